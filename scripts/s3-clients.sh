#!/usr/bin/env bash
# Drives Strata's s3 front with real S3 clients: aws-cli (apt) for `aws s3` and `aws s3api`,
# curl for presigned links, public objects and canned ACLs, s3cmd (apt), and boto3 (pip), which since
# 1.36 sends a flexible checksum with every upload.
#
#   sudo scripts/s3-clients.sh            # builds Strata (release), runs it on spare ports
#
# Every step checks its result; the script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's aws-cli v2 (a pip-installed v1 earlier on PATH would shadow it).
if [ ! -x /usr/bin/aws ] || ! command -v s3cmd >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli s3cmd curl
fi
python3 -c 'import boto3' 2>/dev/null || pip install -q boto3

cargo build --release -p strata
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
STRATA_HTTP_LISTEN=127.0.0.1:18080 STRATA_S3_LISTEN=127.0.0.1:19000 STRATA_PG_ENABLED=false \
    STRATA_RESP_ENABLED=false STRATA_BLOB_MIN_PART_BYTES=5242880 \
    target/release/strata serve --data-dir "$work/data" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 100); do curl -fs localhost:18080/health >/dev/null && break; sleep 0.1; done

export AWS_ACCESS_KEY_ID=strata AWS_SECRET_ACCESS_KEY=strata-secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
S3="http://127.0.0.1:19000"
aws() { /usr/bin/aws --endpoint-url "$S3" "$@"; }
check() { echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# aws s3: mb, cp (single and multipart), ls, sync, rm.
aws s3 mb s3://clients >/dev/null && check "aws s3 mb" || fail "aws s3 mb"
head -c 1000 /dev/urandom >"$work/small.bin"
head -c $((20 * 1024 * 1024 + 17)) /dev/urandom >"$work/big.bin"   # multipart (8 MiB parts)
aws s3 cp "$work/small.bin" s3://clients/small.bin >/dev/null
aws s3 cp "$work/big.bin" s3://clients/dir/big.bin >/dev/null
aws s3 cp s3://clients/dir/big.bin "$work/big.back" >/dev/null
cmp "$work/big.bin" "$work/big.back" && check "aws s3 cp, multipart up and ranged download back" || fail "aws s3 cp, multipart up and ranged download back"
aws s3 ls s3://clients/ | grep -q "PRE dir/" && aws s3 ls s3://clients/dir/ | grep -q big.bin && check "aws s3 ls" || fail "aws s3 ls"
mkdir -p "$work/tree/a/b" && for i in 1 2 3; do echo "file $i" >"$work/tree/a/b/f$i.txt"; done
aws s3 sync "$work/tree" s3://clients/tree >/dev/null
[ "$(aws s3 ls --recursive s3://clients/tree/ | wc -l)" = 3 ] && check "aws s3 sync" || fail "aws s3 sync"
aws s3 sync s3://clients/tree "$work/tree2" >/dev/null && diff -r "$work/tree" "$work/tree2" && check "aws s3 sync down" || fail "aws s3 sync down"
# Presigned GET with curl, and its expiry.
url=$(aws s3 presign s3://clients/small.bin --expires-in 60)
curl -fs "$url" | cmp - "$work/small.bin" && check "aws s3 presign + curl" || fail "aws s3 presign + curl"
url=$(aws s3 presign s3://clients/small.bin --expires-in 1); sleep 2
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 403 ] && check "expired presigned link is 403" || fail "expired presigned link is 403"
# s3api: multipart by hand, policies, versioning, tagging, copy, errors.
upload=$(aws s3api create-multipart-upload --bucket clients --key manual.bin --query UploadId --output text)
head -c $((5 * 1024 * 1024)) /dev/urandom >"$work/p1"; echo tail >"$work/p2"
e1=$(aws s3api upload-part --bucket clients --key manual.bin --upload-id "$upload" --part-number 1 --body "$work/p1" --query ETag --output text)
e2=$(aws s3api upload-part --bucket clients --key manual.bin --upload-id "$upload" --part-number 2 --body "$work/p2" --query ETag --output text)
aws s3api list-parts --bucket clients --key manual.bin --upload-id "$upload" --query 'length(Parts)' | grep -q 2
aws s3api complete-multipart-upload --bucket clients --key manual.bin --upload-id "$upload" \
    --multipart-upload "{\"Parts\":[{\"PartNumber\":1,\"ETag\":$e1},{\"PartNumber\":2,\"ETag\":$e2}]}" >/dev/null
aws s3api head-object --bucket clients --key manual.bin --query ETag --output text | grep -q -- '-2"' && check "s3api multipart" || fail "s3api multipart"
aws s3api put-bucket-policy --bucket clients --policy \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::clients/tree/*"}]}'
curl -fs "$S3/clients/tree/a/b/f1.txt" | grep -q "file 1" && check "public-read policy: anonymous GET" || fail "public-read policy: anonymous GET"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S3/clients/small.bin")" = 403 ] && check "outside the policy: 403" || fail "outside the policy: 403"
curl -fs localhost:18080/blob/clients/tree/a/b/f2.txt | grep -q "file 2" && check "http front serves public objects" || fail "http front serves public objects"
# Canned ACLs: one object made public by the upload itself, then private again.
aws s3 cp "$work/p2" s3://clients/shared.bin --acl public-read >/dev/null
curl -fs "$S3/clients/shared.bin" | cmp - "$work/p2" && check "aws s3 cp --acl public-read: anonymous GET" || fail "aws s3 cp --acl public-read: anonymous GET"
aws s3api get-object-acl --bucket clients --key shared.bin --query 'Grants[].Grantee.URI' --output text \
    | grep -q AllUsers && check "get-object-acl shows the AllUsers grant" || fail "get-object-acl shows the AllUsers grant"
aws s3api put-object-acl --bucket clients --key shared.bin --acl private
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S3/clients/shared.bin")" = 403 ] && check "put-object-acl private: 403 again" || fail "put-object-acl private: 403 again"
aws s3api put-object-acl --bucket clients --key shared.bin --grant-read 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'
curl -fs "$S3/clients/shared.bin" | cmp - "$work/p2" && check "put-object-acl --grant-read AllUsers: anonymous GET" || fail "put-object-acl --grant-read AllUsers: anonymous GET"
aws s3api get-object-acl --bucket clients --key shared.bin --output json >"$work/acl.json"
aws s3api put-object-acl --bucket clients --key shared.bin --access-control-policy "file://$work/acl.json"
curl -fs "$S3/clients/shared.bin" >/dev/null && check "get-object-acl output round-trips through --access-control-policy" || fail "get-object-acl output round-trips through --access-control-policy"
aws s3api put-object-acl --bucket clients --key shared.bin --grant-read id=strata
[ "$(curl -s -o /dev/null -w '%{http_code}' "$S3/clients/shared.bin")" = 403 ] && aws s3api get-object-acl --bucket clients --key shared.bin --query 'Grants[].Permission' --output text | grep -q READ && check "put-object-acl --grant-read id=<key> replaces the public grant" || fail "put-object-acl --grant-read id=<key> replaces the public grant"
aws s3 cp "$work/big.bin" s3://clients/sealed.bin --sse AES256 >/dev/null
aws s3api head-object --bucket clients --key sealed.bin --query ServerSideEncryption --output text | grep -qx AES256 \
    && aws s3 cp s3://clients/sealed.bin - | cmp - "$work/big.bin" && check "aws s3 cp --sse AES256 (multipart): sealed, read back" \
    || fail "aws s3 cp --sse AES256 (multipart): sealed, read back"
aws s3 cp s3://clients/dir/big.bin s3://clients/resealed.bin --sse AES256 >/dev/null
aws s3api head-object --bucket clients --key resealed.bin --query ServerSideEncryption --output text | grep -qx AES256 \
    && aws s3 cp s3://clients/resealed.bin - | cmp - "$work/big.bin" && check "aws s3 cp s3-to-s3 --sse AES256 (part copies): sealed" \
    || fail "aws s3 cp s3-to-s3 --sse AES256 (part copies): sealed"
aws s3 mb s3://sealed >/dev/null
aws s3api put-bucket-encryption --bucket sealed --server-side-encryption-configuration \
    '{"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}'
aws s3 cp "$work/p1" s3://sealed/p1 >/dev/null
aws s3api head-object --bucket sealed --key p1 --query ServerSideEncryption --output text | grep -qx AES256 \
    && aws s3api get-bucket-encryption --bucket sealed --output text | grep -q AES256 \
    && check "put-bucket-encryption: new objects sealed by default" || fail "put-bucket-encryption: new objects sealed by default"
aws s3api put-bucket-lifecycle-configuration --bucket clients --lifecycle-configuration '{"Rules": [
  {"ID": "tmp", "Status": "Enabled", "Filter": {"Prefix": "tmp/"}, "Expiration": {"Days": 7},
   "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}'
aws s3api get-bucket-lifecycle-configuration --bucket clients --query 'Rules[0].Expiration.Days' --output text \
    | grep -qx 7 && check "put/get-bucket-lifecycle-configuration" || fail "put/get-bucket-lifecycle-configuration"
aws s3api delete-bucket-lifecycle --bucket clients
gone=$(aws s3api get-bucket-lifecycle-configuration --bucket clients 2>&1 || true)
grep -q NoSuchLifecycleConfiguration <<<"$gone" && check "delete-bucket-lifecycle: NoSuchLifecycleConfiguration" || fail "delete-bucket-lifecycle: NoSuchLifecycleConfiguration"
# One part of a multipart object by number, as parallel downloaders read it.
aws s3api get-object --bucket clients --key dir/big.bin --part-number 2 "$work/part2" \
    --query '[PartsCount,ContentRange]' --output text | grep -q "^3"$'\t'"bytes 8388608-16777215/" \
    && cmp "$work/part2" <(tail -c +8388609 "$work/big.bin" | head -c 8388608) && check "get-object --part-number 2" || fail "get-object --part-number 2"
aws s3api put-bucket-versioning --bucket clients --versioning-configuration Status=Enabled
v1=$(aws s3api put-object --bucket clients --key doc --body "$work/p2" --query VersionId --output text)
aws s3api put-object --bucket clients --key doc --body "$work/small.bin" >/dev/null
aws s3api get-object --bucket clients --key doc --version-id "$v1" "$work/doc.v1" >/dev/null
cmp "$work/doc.v1" "$work/p2" && check "versioning: old version readable" || fail "versioning: old version readable"
aws s3api list-object-versions --bucket clients --prefix doc --query 'length(Versions)' | grep -q 2 && check "list-object-versions" || fail "list-object-versions"
aws s3api put-object-tagging --bucket clients --key doc --tagging 'TagSet=[{Key=team,Value=web}]' >/dev/null
aws s3api get-object-tagging --bucket clients --key doc --query 'TagSet[0].Value' --output text | grep -q web && check "tagging" || fail "tagging"
aws s3api copy-object --bucket clients --key copied --copy-source clients/small.bin >/dev/null && check "copy-object" || fail "copy-object"
aws s3api delete-objects --bucket clients --delete '{"Objects":[{"Key":"copied"},{"Key":"small.bin"}]}' >/dev/null && check "delete-objects" || fail "delete-objects"
if aws s3api get-object --bucket clients --key nope "$work/x" 2>"$work/err"; then exit 1; fi
grep -q NoSuchKey "$work/err" && check "NoSuchKey" || fail "NoSuchKey"
if AWS_SECRET_ACCESS_KEY=wrong aws s3 ls s3://clients 2>"$work/err"; then exit 1; fi
grep -q SignatureDoesNotMatch "$work/err" && check "wrong secret: SignatureDoesNotMatch" || fail "wrong secret: SignatureDoesNotMatch"
# s3cmd: its own SigV4 signer and multipart uploads (over 15 MiB).
s3c() { s3cmd --host=127.0.0.1:19000 --host-bucket=127.0.0.1:19000 --no-ssl --access_key=strata \
    --secret_key=strata-secret --region=us-east-1 "$@"; }
s3c mb s3://s3cmd >/dev/null
s3c put "$work/big.bin" s3://s3cmd/big.bin >/dev/null
s3c get --force s3://s3cmd/big.bin "$work/big.s3cmd" >/dev/null
cmp "$work/big.bin" "$work/big.s3cmd" && s3c ls s3://s3cmd | grep -q big.bin && check "s3cmd mb/put/get/ls" || fail "s3cmd mb/put/get/ls"
# boto3: default checksums, presigned POST (browser form upload), user keys.
python3 - "$S3" <<'EOF'
import sys, boto3, botocore, urllib.request, urllib.error, json
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="strata",
                  aws_secret_access_key="strata-secret", region_name="us-east-1")
s3.create_bucket(Bucket="boto")
s3.put_object(Bucket="boto", Key="crc", Body=b"x" * 100_000, ChecksumAlgorithm="CRC32")
sealed = s3.put_object(Bucket="boto", Key="sealed", Body=b"y" * 100_000, ServerSideEncryption="AES256")
assert sealed["ServerSideEncryption"] == "AES256", sealed
assert s3.get_object(Bucket="boto", Key="sealed", Range="bytes=10-19")["Body"].read() == b"y" * 10
head = s3.head_object(Bucket="boto", Key="crc", ChecksumMode="ENABLED")
assert head.get("ChecksumCRC32"), head
s3.upload_file("/etc/os-release", "boto", "os-release")          # s3transfer, default checksums
assert s3.get_object(Bucket="boto", Key="os-release")["Body"].read() == open("/etc/os-release", "rb").read()
post = s3.generate_presigned_post("boto", "form-upload.txt", ExpiresIn=60)
import uuid
boundary = uuid.uuid4().hex
body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in post["fields"].items())
body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n\r\nfrom a form\r\n--{boundary}--\r\n'.encode()
req = urllib.request.Request(post["url"], data=body, method="POST",
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
urllib.request.urlopen(req)
assert s3.get_object(Bucket="boto", Key="form-upload.txt")["Body"].read() == b"from a form"
def form_post(key, fields, conditions):
    post = s3.generate_presigned_post("boto", key, Fields=fields, Conditions=conditions, ExpiresIn=60)
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in post["fields"].items())
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nx\r\n--{boundary}--\r\n'.encode()
    req = urllib.request.Request(post["url"], data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code
all_users = 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'
assert form_post("granted.txt", {"x-amz-grant-read": all_users}, [{"x-amz-grant-read": all_users}]) == 501
assert form_post("public.txt", {"acl": "public-read"}, [{"acl": "public-read"}]) == 204
assert urllib.request.urlopen(f"{sys.argv[1]}/boto/public.txt").read() == b"x"
try:
    s3.create_bucket(Bucket="granted", GrantRead=all_users)
    raise SystemExit("expected NotImplemented for a bucket grant")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "NotImplemented", e.response
try:
    s3.get_object(Bucket="boto", Key="crc", Range="bytes=200000-")
    raise SystemExit("expected InvalidRange")
except botocore.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "InvalidRange", e.response
print("ok: boto3 checksums, SSE-S3, upload_file, presigned POST (with a canned ACL; grants refused), InvalidRange")
EOF

echo "all S3 client checks passed"
