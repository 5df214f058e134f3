# Image for the Annalist worker, projector and API processes (used by docker-compose.yml).
# Stage 1 installs every dependency and builds the product (`npm ci` runs `npm run build`: the CLI and the prebuilt
# workflow bundle in dist/); stage 2 keeps only what runs: production dependencies, dist/, bin/ and the migrations.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY tsconfig.json ./
COPY cli ./cli
COPY api ./api
COPY activities ./activities
COPY historian ./historian
COPY projections ./projections
COPY workflows ./workflows
COPY bench ./bench
COPY test/support ./test/support
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY migrations ./migrations
USER node
ENTRYPOINT ["node", "bin/annalist.js"]
CMD ["--help"]
