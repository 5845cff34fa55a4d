# The creditflow image used by docker-compose.yml for both the worker and the API.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY agents agents
COPY state state
COPY loadtest loadtest
COPY specs specs
# Editable, so that specs/ is read from /app/specs as in a checkout.
RUN pip install --no-cache-dir -e . \
    && useradd --system creditflow && mkdir /data && chown creditflow /data
USER creditflow
