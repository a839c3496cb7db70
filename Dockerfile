FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev
COPY . .
ENV JOURNEYS_DIR=/app/journeys MEMBERFLOW_HTTP_HOST=0.0.0.0
EXPOSE 8787
# engine/NodeFlags.ts: a larger young generation; the engine makes many short-lived objects per event, and scavenges of
# the default 16 MB semi-space cost about a quarter of its time (BENCHMARKS.md).
ENTRYPOINT ["node", "--max-semi-space-size=64", "bin/memberflow.js"]
CMD ["run"]
