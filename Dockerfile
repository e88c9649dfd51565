# syntax=docker/dockerfile:1
#
# nextword autocomplete API — CPU-only runtime image.
#
#   docker build -t nextword .
#   docker run --rm -p 8000:8000 nextword
#
# torch comes from the PyTorch CPU wheel index (no CUDA libraries). Every pip
# knob below is a build arg, so an offline/test build can point pip at a local
# wheel folder and a CA bundle, e.g. with podman (which can mount host paths
# into RUN steps):
#
#   podman build -v /opt/wheels:/opt/wheels:ro \
#       -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro \
#       --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
#       --build-arg PIP_FIND_LINKS=/opt/wheels \
#       --build-arg PIP_CERT=/etc/ssl/certs/host-ca.crt \
#       -t nextword .
#
# Only app/, model/ (with model/artifacts/*.pt), pyproject.toml and README.md
# are copied: training/ and bench/ are deliberately absent, and setuptools'
# package discovery simply finds nothing for those include patterns.

FROM python:3.11-slim

# Where torch is installed from (CPU-only wheels by default) and which version
# (must agree with the pin in pyproject.toml).
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
# Optional pip settings, passed through to pip as environment variables only
# while building (ARGs are not kept in the runtime environment). Unset unless
# given with --build-arg.
ARG PIP_CERT
ARG PIP_FIND_LINKS
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG PIP_NO_INDEX

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

# torch first, in its own layer: it is by far the largest dependency and
# changes far less often than the application code.
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The project itself (its remaining dependencies come from the default index;
# the installed CPU torch already satisfies the torch pin). The sources are
# removed afterwards so the server always runs from the installed package.
WORKDIR /tmp/nextword-src
COPY pyproject.toml README.md ./
COPY app ./app
COPY model ./model
WORKDIR /
RUN pip install --no-cache-dir /tmp/nextword-src \
    && rm -rf /tmp/nextword-src \
    && python -c "import app, model, torch; print('nextword installed; torch', torch.__version__)"

# Run as an unprivileged user (numeric ids, so the runtime can verify
# "not root" without reading /etc/passwd, e.g. Kubernetes runAsNonRoot).
RUN groupadd --system --gid 10001 nextword \
    && useradd --system --uid 10001 --gid 10001 --create-home \
        --home-dir /home/nextword --shell /usr/sbin/nologin nextword
USER 10001:10001
WORKDIR /home/nextword

ENV NEXTWORD_HOST=0.0.0.0 \
    NEXTWORD_PORT=8000

EXPOSE 8000

# /readyz answers 503 until the models are loaded; urllib raises on non-2xx.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('NEXTWORD_PORT', '8000'), timeout=4)"]

CMD ["python", "-m", "app"]
