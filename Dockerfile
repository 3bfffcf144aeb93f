# One image for the four workers and onectl; the command picks (see compose.yaml):
#   python -m services.<order_intake|directory_sync|account_manager|credential_dispatch>
#   python -m onectl topology apply   (the deploy step)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Chromium from Debian renders credential_dispatch's PDFs (Playwright drives it through
# ONE_CHROMIUM_PATH; `playwright install` is not used); Ghostscript makes the invoices
# PDF/A-3 for Factur-X.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium fonts-dejavu-core ghostscript \
 && rm -rf /var/lib/apt/lists/*

# A non-root user with a home: Chromium and Playwright's driver write under $HOME.
RUN groupadd --system --gid 10001 one \
 && useradd --system --uid 10001 --gid one --create-home --home-dir /home/one one

WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY onectl ./onectl
RUN pip install .

USER one:one
ENV HOME=/home/one \
    ONE_CHROMIUM_PATH=/usr/bin/chromium \
    ONE_OPS_PORT=8000
# /healthz for the orchestrator's health checks (not published: replicas share no port).
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.order_intake"]
