#!/usr/bin/env bash
# The minicloud answers like a cloud: Keystone tokens and catalog, Glance images with per-project
# isolation, nova flavors, the service user's roles, and an AMQP round trip on its RabbitMQ.
# Runs in the "cloud" group: tests/run has sourced $ISOFORGE_CLOUD_DIR/env.sh.
set -eu -o pipefail
: "${OS_AUTH_URL:?env.sh not sourced}" "${TEST_TMP:?}"
t=$TEST_TMP
PY=/usr/bin/python3

fail() { echo "FAIL: $*" >&2; exit 1; }
# jq-like: jget EXPR < json  (EXPR is Python over `d`, the parsed document)
jget() { $PY -c 'import json,sys; d=json.load(sys.stdin); r='"$1"'; print(r if isinstance(r,str) else json.dumps(r))'; }

# token USER PASSWORD PROJECT → prints the token; the body lands in $t/token-USER.json
token() {
	local body code
	body=$(printf '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"%s","domain":{"name":"Default"},"password":"%s"}}},"scope":{"project":{"name":"%s","domain":{"name":"Default"}}}}}' "$1" "$2" "$3")
	code=$(curl -sS -o "$t/token-$1.json" -D "$t/token-$1.hdr" -w '%{http_code}' \
		-H 'Content-Type: application/json' -d @- "$OS_AUTH_URL/auth/tokens" <<<"$body")
	[ "$code" = 201 ] || fail "token for $1: HTTP $code $(cat "$t/token-$1.json")"
	tr -d '\r' < "$t/token-$1.hdr" | awk 'tolower($1)=="x-subject-token:" {print $2}'
}
# api TOKEN METHOD URL [curl args...] → body on stdout; HTTP status in $t/code
api() {
	local tok=$1 method=$2 url=$3; shift 3
	curl -sS -o "$t/body" -w '%{http_code}' -H "X-Auth-Token: $tok" -H 'Accept: application/json' \
		-X "$method" "$@" "$url" > "$t/code"
	cat "$t/body"
}

echo "== Keystone: tokens for every user, the catalog, roles"
alice=$(token "$OS_USERNAME" "$OS_PASSWORD" "$OS_PROJECT_NAME")
bob=$(token "$ALT_OS_USERNAME" "$ALT_OS_PASSWORD" "$ALT_OS_PROJECT_NAME")
admin=$(token "$ADMIN_OS_USERNAME" "$ADMIN_OS_PASSWORD" "$ADMIN_OS_PROJECT_NAME")
svc=$(token "$ISOFORGE_SERVICE_USERNAME" "$ISOFORGE_SERVICE_PASSWORD" "$ISOFORGE_SERVICE_PROJECT_NAME")
for tok in "$alice" "$bob" "$admin" "$svc"; do [ -n "$tok" ] || fail "empty token"; done
types=$(jget 'sorted(e["type"] for e in d["token"]["catalog"])' < "$t/token-alice.json")
[ "$types" = '["compute", "identity", "image", "image-build"]' ] || fail "catalog types: $types"
for ty in identity:"$OS_AUTH_URL" image:"$GLANCE_URL" compute:"$NOVA_URL"; do
	url=$(jget '[e["url"] for s in d["token"]["catalog"] if s["type"]=="'"${ty%%:*}"'" for e in s["endpoints"] if e["interface"]=="public" and e["region_id"]=="RegionOne"][0]' < "$t/token-alice.json")
	[ "${url%/}" = "${ty#*:}" ] || fail "public ${ty%%:*} endpoint $url, env says ${ty#*:}"
done
roles=$(jget 'sorted(r["name"] for r in d["token"]["roles"])' < "$t/token-alice.json")
[ "$roles" = '["member", "reader"]' ] || fail "alice's roles: $roles"
roles=$(jget 'sorted(r["name"] for r in d["token"]["roles"])' < "$t/token-isoforge.json")
[ "$roles" = '["admin", "member", "reader", "service"]' ] || fail "isoforge's roles: $roles"
# A wrong password is refused (auth is real).
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
	-d '{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"alice","domain":{"name":"Default"},"password":"wrong"}}}}}' \
	"$OS_AUTH_URL/auth/tokens")
[ "$code" = 401 ] || fail "wrong password gave HTTP $code"

echo "== Glance: list as alice, a bad token is refused"
api "$alice" GET "$GLANCE_URL/v2/images" > "$t/list.json"
[ "$(cat "$t/code")" = 200 ] || fail "image list: HTTP $(cat "$t/code")"
api "not-a-token" GET "$GLANCE_URL/v2/images" > /dev/null
[ "$(cat "$t/code")" = 401 ] || fail "image list with a bad token: HTTP $(cat "$t/code")"
# User token + isoforge's service token is accepted (the path used for long uploads).
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $alice" -H "X-Service-Token: $svc" \
	"$GLANCE_URL/v2/images")
[ "$code" = 200 ] || fail "image list with a service token: HTTP $code"

echo "== Glance: the python client uploads a private image for alice (--file)"
head -c 3000000 /dev/urandom > "$t/disk.raw"
glance --os-auth-url "$OS_AUTH_URL" --os-username "$OS_USERNAME" --os-password "$OS_PASSWORD" \
	--os-project-name "$OS_PROJECT_NAME" --os-user-domain-name Default \
	--os-project-domain-name Default --os-region-name "$OS_REGION_NAME" --os-endpoint-type public \
	image-create --name "smoke-$$" --disk-format raw --container-format bare \
	--visibility private --file "$t/disk.raw" --property isoforge_chain=smoke > "$t/create.txt" \
	|| fail "glance image-create: $(cat "$t/create.txt")"
id=$(awk -F'|' '$2 ~ /^ id / {gsub(/ /, "", $3); print $3}' "$t/create.txt")
[ -n "$id" ] || fail "no image id in: $(cat "$t/create.txt")"
api "$alice" GET "$GLANCE_URL/v2/images/$id" > "$t/img.json"
[ "$(jget 'd["status"]' < "$t/img.json")" = active ] || fail "image not active: $(cat "$t/img.json")"
[ "$(jget 'd["size"]' < "$t/img.json")" = 3000000 ] || fail "size: $(cat "$t/img.json")"
[ "$(jget 'd["isoforge_chain"]' < "$t/img.json")" = smoke ] || fail "property lost"
want=$(sha512sum "$t/disk.raw" | cut -d' ' -f1)
[ "$(jget 'd["os_hash_value"]' < "$t/img.json")" = "$want" ] || fail "os_hash_value differs"
code=$(curl -sS -o "$t/down.raw" -w '%{http_code}' -H "X-Auth-Token: $alice" "$GLANCE_URL/v2/images/$id/file")
[ "$code" = 200 ] || fail "download: HTTP $code"
cmp -s "$t/disk.raw" "$t/down.raw" || fail "downloaded data differs"

echo "== Glance: bob (another project) can neither see nor fetch alice's private image"
api "$bob" GET "$GLANCE_URL/v2/images/$id" > /dev/null
[ "$(cat "$t/code")" = 404 ] || fail "bob GET alice's image: HTTP $(cat "$t/code")"
api "$bob" GET "$GLANCE_URL/v2/images" > "$t/bob-list.json"
[ "$(jget '[i["id"] for i in d["images"] if i["id"]=="'"$id"'"]' < "$t/bob-list.json")" = '[]' ] \
	|| fail "bob lists alice's image"
api "$bob" DELETE "$GLANCE_URL/v2/images/$id" > /dev/null
[ "$(cat "$t/code")" = 404 ] || fail "bob DELETE alice's image: HTTP $(cat "$t/code")"
api "$alice" DELETE "$GLANCE_URL/v2/images/$id" > /dev/null
[ "$(cat "$t/code")" = 204 ] || fail "alice DELETE: HTTP $(cat "$t/code")"

echo "== Glance: an expired user token passes only with a service token of a 'service' user"
expired=$("$ISOFORGE_TOP/tests/cloud/minicloud" expire-token "$ISOFORGE_CLOUD_DIR" "$alice" 120)
api "$expired" GET "$GLANCE_URL/v2/images" > /dev/null
[ "$(cat "$t/code")" = 401 ] || fail "expired token alone: HTTP $(cat "$t/code")"
api "$expired" GET "$GLANCE_URL/v2/images" -H "X-Service-Token: $bob" > /dev/null
[ "$(cat "$t/code")" = 401 ] || fail "expired token + bob's (no service role): HTTP $(cat "$t/code")"
api "$alice" POST "$GLANCE_URL/v2/images" -H 'Content-Type: application/json' \
	-d '{"name":"late-upload","disk_format":"raw","container_format":"bare"}' > "$t/late.json"
[ "$(cat "$t/code")" = 201 ] || fail "create: HTTP $(cat "$t/code")"
late=$(jget 'd["id"]' < "$t/late.json")
api "$expired" PUT "$GLANCE_URL/v2/images/$late/file" -H "X-Service-Token: $svc" \
	-H 'Content-Type: application/octet-stream' --data-binary @"$t/disk.raw" > /dev/null
[ "$(cat "$t/code")" = 204 ] || fail "upload with expired token + service token: HTTP $(cat "$t/code") $(cat "$t/body")"
api "$alice" GET "$GLANCE_URL/v2/images/$late" > "$t/late.json"
[ "$(jget 'd["status"]' < "$t/late.json")" = active ] || fail "late upload not active"
[ "$(jget 'd["owner"]' < "$t/late.json")" = "$(jget 'd["token"]["project"]["id"]' < "$t/token-alice.json")" ] \
	|| fail "late upload not owned by alice's project"
api "$alice" DELETE "$GLANCE_URL/v2/images/$late" > /dev/null

echo "== nova-api: the flavors, as alice"
api "$alice" GET "$NOVA_URL/flavors/detail" > "$t/flavors.json"
[ "$(cat "$t/code")" = 200 ] || fail "flavor list: HTTP $(cat "$t/code")"
for f in "isoforge.tiny $ISOFORGE_FLAVOR_TINY 1 256 2" "isoforge.small $ISOFORGE_FLAVOR_SMALL 2 512 4" \
	 "isoforge.nodisk $ISOFORGE_FLAVOR_NODISK 1 256 0"; do
	# shellcheck disable=SC2086  # split into name id vcpus ram disk
	set -- $f
	got=$(jget '[" ".join(str(x) for x in (f["name"], f["id"], f["vcpus"], f["ram"], f["disk"])) for f in d["flavors"] if f["name"]=="'"$1"'"]' < "$t/flavors.json")
	[ "$got" = "[\"$f\"]" ] || fail "flavor $1: $got"
done
api "$alice" GET "$NOVA_URL/servers" > /dev/null
[ "$(cat "$t/code")" = 200 ] || fail "server list: HTTP $(cat "$t/code") $(cat "$t/body")"

echo "== RabbitMQ: publish and consume one message; a wrong password is refused"
url="amqp://$RABBITMQ_USER:$RABBITMQ_PASS@127.0.0.1:$RABBITMQ_PORT"
[ "$ISOFORGE_TRANSPORT_URL" = "rabbit://$RABBITMQ_USER:$RABBITMQ_PASS@127.0.0.1:$RABBITMQ_PORT/" ] \
	|| fail "ISOFORGE_TRANSPORT_URL does not match RABBITMQ_*"
q=smoke.$$
amqp-declare-queue --url "$url" -q "$q" > /dev/null
amqp-publish --url "$url" -r "$q" -b "hello $$"
got=$(timeout 20 amqp-consume --url "$url" -q "$q" -c 1 cat)
[ "$got" = "hello $$" ] || fail "consumed '$got'"
amqp-delete-queue --url "$url" -q "$q" > /dev/null
if timeout 20 amqp-publish --url "amqp://$RABBITMQ_USER:wrong@127.0.0.1:$RABBITMQ_PORT" -r "$q" -b x 2>/dev/null; then
	fail "a wrong AMQP password was accepted"
fi
echo "ok"
