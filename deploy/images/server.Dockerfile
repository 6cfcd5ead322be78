# syntax=docker/dockerfile:1.7
# tempered/server: `tempered serve <model>@champion`, the registry's champion behind an
# OpenAI-compatible HTTP API on port 8080 (/v1/..., /healthz, /metrics). Build from the repository root:
#   docker build -f deploy/images/server.Dockerfile -t tempered/server:0.1.0 .
# torch models (classifiers, and causal LMs turned into GGUF for llama.cpp) need the pinned Python
# environment, so it is built in by default (about 6 GB); --build-arg TORCH_ENV=false leaves it out
# for tfjs models only.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: `prepare` would compile before the sources are here, the `node` dev package
# would fetch a second Node, and no runtime dependency needs one (node-llama-cpp's stays off, as in
# package.json's allowScripts: its prebuilt binaries come as optional packages).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY activities activities
COPY cli cli
COPY infra infra
COPY pipelines pipelines
COPY workflows workflows
# tsc by path: node_modules/.bin/node (the `node` dev package, not installed here) must not shadow this image's Node.
RUN node node_modules/typescript/bin/tsc -p tsconfig.json && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG TORCH_ENV=true
LABEL org.opencontainers.image.title="tempered/server" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/tempered tempered
ENV NODE_ENV=production \
    TEMPERED_PYTHON=/usr/bin/python3 \
    TEMPERED_PYTHON_ENV_DIR=/opt/tempered/python
WORKDIR /app
# The worker's own builder (infra/python-env.ts): venv, pip install --require-hashes --no-deps
# --only-binary :all: -r python/requirements.lock, marker last; in a layer of its own.
COPY python/requirements.lock python/requirements.lock
COPY --from=build /src/dist/infra/python-env.js dist/infra/python-env.js
RUN if [ "$TORCH_ENV" = "true" ]; then \
      PIP_NO_CACHE_DIR=1 node -e "require('/app/dist/infra/python-env.js').ensurePythonEnv().then((env) => console.log(env.dir), (err) => { console.error(err.message); process.exit(1); })"; \
    fi \
 && mkdir -p /opt/tempered/python && chown tempered:tempered /opt/tempered/python
COPY --from=build /src/package.json package.json
COPY --from=build /src/node_modules node_modules
COPY --from=build /src/dist/activities dist/activities
COPY --from=build /src/dist/cli dist/cli
COPY --from=build /src/dist/infra dist/infra
COPY --from=build /src/dist/pipelines dist/pipelines
COPY --from=build /src/dist/workflows dist/workflows
COPY python python
RUN ln -s /app/dist/cli/main.js /usr/local/bin/tempered
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "tempered"]
CMD ["serve", "spam-continual@champion", "--port", "8080", "--host", "0.0.0.0"]
