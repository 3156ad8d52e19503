# The audiorag API (`audiorag serve`), CPU build by default.
#   docker-compose up -d            # with the Qdrant server from docker-compose.yml
# GPU build: --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 (compose profile "gpu").
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
# The CPU wheel index: the default PyPI torch pulls several GB of CUDA libraries.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUDIORAG_DATA_DIR=/data \
    AUDIORAG_API_HOST=0.0.0.0 \
    AUDIORAG_API_PORT=8000 \
    HF_HOME=/data/huggingface

# torch first, in its own layer: it is the big one and changes least.
RUN pip install --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY index ./index
COPY rag ./rag
COPY generation ./generation
# Non-editable install: the bundled models (safetensors/json under index/ and generation/) are
# package data and land in site-packages with the code.
RUN pip install . && rm -rf /app/build

RUN useradd --create-home --uid 10001 audiorag \
    && mkdir -p /data /models \
    && chown audiorag:audiorag /data
USER audiorag
WORKDIR /home/audiorag
VOLUME ["/data"]
EXPOSE 8000

# No curl in the slim image; Python is there anyway.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=5 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('AUDIORAG_API_PORT', '8000')}/healthz\", timeout=4)"]

# `python -m audiorag.cli.serve` is the same command as `audiorag serve` / `audiorag keys …`.
ENTRYPOINT ["python", "-m", "audiorag.cli.serve"]
CMD ["serve"]
