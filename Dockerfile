# recallwatch daemon image (multi-stage; never built in the test suite: it needs a network).
#   docker build -t recallwatch:0.1.0 .                             # precomputed / python encoders
#   docker build -t recallwatch:0.1.0-st --build-arg EXTRAS=st .    # + sentence-transformers
# The st variant installs the CPU build of torch from TORCH_INDEX_URL first (a plain PyPI torch on
# Linux is the multi-GB CUDA build). For a GPU image pass a CUDA index, e.g.
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124
#
# Base image: pinned to an exact Python patch and Debian release. Pin the digest too in your
# registry mirror (`docker buildx imagetools inspect python:3.11.11-slim-bookworm` gives it, then
# FROM python:3.11.11-slim-bookworm@sha256:<digest>); it is not written here because it could not
# be resolved and checked offline. Keep both FROM lines equal: the venv is copied between them.

FROM python:3.11.11-slim-bookworm AS builder
ARG EXTRAS=""
ARG TORCH="torch==2.13.0"
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
# 1. Dependencies only: this layer changes only when pyproject.toml (or EXTRAS) does.
COPY pyproject.toml deploy/docker/requirements.py ./
RUN python requirements.py "$EXTRAS" > requirements.txt \
 && if [ -n "$EXTRAS" ]; then pip install --index-url "$TORCH_INDEX_URL" "$TORCH"; fi \
 && pip install -r requirements.txt
# 2. The code: a change here reinstalls recallwatch alone.
COPY README.md ./
COPY service ./service
RUN pip install --no-deps . \
 && recallwatch --version

FROM python:3.11.11-slim-bookworm AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    HOME=/var/lib/recallwatch \
    RECALLWATCH_CONFIG=/etc/recallwatch/recallwatch.yaml
# A numeric user (10001), so Kubernetes can verify runAsNonRoot; the same uid as the manifests.
RUN groupadd --system --gid 10001 recallwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/recallwatch --create-home \
      --shell /usr/sbin/nologin recallwatch
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
WORKDIR /var/lib/recallwatch
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"
ENTRYPOINT ["recallwatch"]
CMD ["serve", "--listen", "0.0.0.0:9464", "--log-format", "json"]
