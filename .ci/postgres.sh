# Sourced by .ci/run: install and start PostgreSQL on loopback for the storage tests, then
# export R3DNAS_TEST_POSTGRES_URL. Idempotent. Relies on the caller's `set -euo pipefail`.
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "ci: installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
if ! pg_lsclusters -h 2>/dev/null | grep -q "^${PG_VERSION} main"; then
  pg_createcluster "$PG_VERSION" main >/dev/null
fi
pg_ctlcluster "$PG_VERSION" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -q && break
  sleep 1
done
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='r3dnas'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE USER r3dnas\""
# NOTE: set every time: a role left by an earlier setup may have another password (or none),
# and then every PostgreSQL test fails with "password authentication failed".
su postgres -c "psql -qc \"ALTER USER r3dnas WITH LOGIN PASSWORD 'r3dnas-ci'\""
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='r3dnas_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE DATABASE r3dnas_test OWNER r3dnas\""
su postgres -c "psql -qc \"ALTER DATABASE r3dnas_test OWNER TO r3dnas\""
export R3DNAS_TEST_POSTGRES_URL="postgresql+psycopg://r3dnas:r3dnas-ci@127.0.0.1:5432/r3dnas_test"
echo "ci: PostgreSQL $PG_VERSION ready on 127.0.0.1:5432"
