#!/bin/bash
# Kong 2.8 does not expand environment variables in its declarative config: put the API keys (from Secrets, via
# the environment) into a copy of the template, then start kong. Keys are JWTs (base64url and dots), so '|' is a
# safe sed delimiter; the dashboard password must not contain '|', '&' or '\'.
set -euo pipefail
sed \
  -e "s|\${SUPABASE_ANON_KEY}|${SUPABASE_ANON_KEY}|g" \
  -e "s|\${SUPABASE_SERVICE_KEY}|${SUPABASE_SERVICE_KEY}|g" \
  -e "s|\${DASHBOARD_USERNAME}|${DASHBOARD_USERNAME}|g" \
  -e "s|\${DASHBOARD_PASSWORD}|${DASHBOARD_PASSWORD}|g" \
  /usr/local/kong/template/kong.yml > /tmp/kong.yml
exec /docker-entrypoint.sh kong docker-start
