FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# npm's `prepare` runs bin/build.js, which skips the bundle while the sources are not copied yet.
COPY bin ./bin
RUN npm install --omit=dev
COPY . .
# The bundle the bin starts from (about 1.1 s instead of 2.5–3 s through tsx; README, "Commands").
RUN npm run build
ENV JOURNEYS_DIR=/app/journeys MEMBERFLOW_HTTP_HOST=0.0.0.0
EXPOSE 8787
# engine/NodeFlags.ts: a larger young generation (the engine makes many short-lived objects per event, and scavenges of
# the default 16 MB semi-space cost about a quarter of its time), and a full collection when the heap has doubled rather
# than quadrupled (peak RSS 1.8 GB instead of 2.4 GB in bench:ingest, at the same throughput; BENCHMARKS.md).
ENTRYPOINT ["node", "--max-semi-space-size=64", "--heap-growing-percent=100", "bin/memberflow.js"]
CMD ["run"]
