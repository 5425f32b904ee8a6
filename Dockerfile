# recallwatch daemon image.
#   docker build -t recallwatch .                          # precomputed / python encoders only
#   docker build -t recallwatch --build-arg EXTRAS=st .    # + sentence-transformers (CPU torch)
# For the st extra, point pip at an index that serves the CPU build of torch (a plain PyPI
# install of torch on Linux pulls the multi-GB CUDA build): --build-arg PIP_EXTRA_INDEX_URL=...
FROM python:3.11-slim

ARG EXTRAS=""
ARG TORCH="torch==2.13.0"
ARG PIP_EXTRA_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    RECALLWATCH_CONFIG=/etc/recallwatch/recallwatch.yaml

WORKDIR /opt/recallwatch
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip install . \
 && if [ -n "$EXTRAS" ]; then pip install "$TORCH" && pip install ".[$EXTRAS]"; fi \
 && useradd --system --uid 10001 --home-dir /var/lib/recallwatch --create-home recallwatch

USER recallwatch
WORKDIR /var/lib/recallwatch
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"
ENTRYPOINT ["recallwatch"]
CMD ["serve", "--listen", "0.0.0.0:9464", "--log-format", "json"]
