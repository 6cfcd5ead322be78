# syntax=docker/dockerfile:1.7
# tempered/worker-gpu: `tempered worker --queue gpu`, one per GPU node (or per GPU: see
# deploy/k8s/base/worker-gpu.yaml), with the torch engine's pinned Python environment built in.
# Build from the repository root:
#   docker build -f deploy/images/worker-gpu.Dockerfile -t tempered/worker-gpu:0.1.0 .
# The CUDA libraries come from the lock's nvidia-* wheels (torch 2.15+cu132, python/README.md); the
# CUDA base image adds the NVIDIA container runtime's settings and its driver check (CUDA >= 13.2).
ARG NODE_IMAGE=node:24-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:13.2.0-base-ubuntu24.04

FROM ${NODE_IMAGE} AS node

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

FROM ${CUDA_IMAGE}
LABEL org.opencontainers.image.title="tempered/worker-gpu" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/tempered tempered
COPY --from=node /usr/local/bin/node /usr/local/bin/node
ENV NODE_ENV=production \
    TEMPERED_PYTHON=/usr/bin/python3 \
    TEMPERED_PYTHON_ENV_DIR=/opt/tempered/python
WORKDIR /app
# The environment first, in a layer that changes only with the lock or its builder (~6 GB): the
# worker's own builder (infra/python-env.ts: venv, pip install --require-hashes --no-deps
# --only-binary :all: -r python/requirements.lock, an import check, the marker last), so the
# worker finds it complete under TEMPERED_PYTHON_ENV_DIR and never builds it again.
COPY python/requirements.lock python/requirements.lock
COPY --from=build /src/dist/infra/python-env.js dist/infra/python-env.js
RUN PIP_NO_CACHE_DIR=1 node -e "require('/app/dist/infra/python-env.js').ensurePythonEnv().then((env) => console.log(env.dir), (err) => { console.error(err.message); process.exit(1); })"
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
# tini reaps the training processes (torchrun and its ranks) and passes SIGTERM on: the worker stops
# polling and lets running attempts end; a retry resumes from the last checkpoint (invariant 5).
ENTRYPOINT ["/usr/bin/tini", "--", "tempered"]
CMD ["worker", "--queue", "gpu"]
