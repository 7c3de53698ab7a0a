# swapd as one image: `swapd serve` by default, and every other `swapd` command with
# `docker compose run --rm swapd-migrate swapd ...`. Built by compose.yaml; see docs/DEPLOY.md.
# The package is installed from uv.lock (--frozen), without the development tools, as a wheel
# (--no-editable), so the runtime stage needs nothing but the virtual environment.
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir uv==0.13.10
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /srv/swapd --create-home swapd
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /srv/swapd
USER swapd
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["swapd", "serve", "--host", "0.0.0.0", "--port", "8000", "--json-logs"]
