FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev
COPY . .
ENV JOURNEYS_DIR=/app/journeys MEMBERFLOW_HTTP_HOST=0.0.0.0
EXPOSE 8787
ENTRYPOINT ["node", "bin/memberflow.js"]
CMD ["run"]
