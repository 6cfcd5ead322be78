# syntax=docker/dockerfile:1.7
# tempered/worker-cpu: `tempered worker --queue cpu`, the pool that runs the workflows and every
# stage that asks for no GPU. Build from the repository root:
#   docker build -f deploy/images/worker-cpu.Dockerfile -t tempered/worker-cpu:0.1.0 .
# torch stages without a GPU need the pinned Python environment: --build-arg TORCH_ENV=true puts it
# in the image (about 6 GB); without it a worker builds it on first use into TEMPERED_PYTHON_ENV_DIR,
# which needs PyPI and minutes (python/README.md).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: `prepare` would compile before the sources are here, the `node` dev package
# would fetch a second Node, and no runtime dependency needs one (node-llama-cpp's stays off, as in
# package.json's allowScripts).
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
ARG TORCH_ENV=false
LABEL org.opencontainers.image.title="tempered/worker-cpu" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/tempered tempered
ENV NODE_ENV=production \
    TEMPERED_PYTHON=/usr/bin/python3 \
    TEMPERED_PYTHON_ENV_DIR=/opt/tempered/python
WORKDIR /app
COPY python/requirements.lock python/requirements.lock
COPY --from=build /src/dist/infra/python-env.js dist/infra/python-env.js
# The same builder a worker uses (infra/python-env.ts: venv, pip --require-hashes --no-deps
# --only-binary :all:, marker last), so a worker finds the env ready and never rebuilds it.
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
COPY pipelines/examples pipelines/examples
COPY python python
RUN ln -s /app/dist/cli/main.js /usr/local/bin/tempered
USER 10001:10001
# tini reaps the stages' child processes (command stages, torch) and passes SIGTERM on: the worker
# then stops polling and lets running attempts end (ARCHITECTURE.md, invariant 5: a retry resumes
# from the last checkpoint).
ENTRYPOINT ["/usr/bin/tini", "--", "tempered"]
CMD ["worker", "--queue", "cpu"]
