#!/usr/bin/env python3
"""Stand-ins for the SMS services cronvisor talks to, over HTTPS, for the integration tests.

Each checks a request exactly as the service's public API documentation specifies — method,
path, headers, parameters, body shape — and recomputes its signature from the documented
algorithm, written here independently of cronvisor's code:

- Aliyun SendSms (API 2017-05-25, RPC signature: HMAC-SHA1 over
  "GET&%2F&" + percent-encoded sorted query, key "<AccessKeySecret>&");
- Tencent Cloud SendSms (API 2021-01-11, TC3-HMAC-SHA256);
- Twilio Messages (API 2010-04-01, HTTP Basic authentication, form body).

It answers as the service does: success, a wrong signature, or — for a number ending in 9 —
the service's refusal of that number. Every request's verdict is appended to the JSON-lines
file given, and the port it listens on is printed once it serves.

    sms_services.py --cert server.pem --key server.key --log verdicts.jsonl
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import ssl
import sys
import time
import urllib.parse

ALIYUN = {"LTAI-test": "aliyun-secret"}
TENCENT = {"AKID-test": "tencent-secret"}
TWILIO = {"AC-test": "twilio-token"}


def rfc3986(s):
    return urllib.parse.quote(s, safe="~")


def aliyun_expected(params, secret):
    query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in sorted(params.items()))
    to_sign = "GET&" + rfc3986("/") + "&" + rfc3986(query)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def tc3_expected(secret, headers, signed, payload, timestamp, service):
    canonical_headers = "".join(f"{h}:{headers.get(h, '').strip().lower()}\n"
                                for h in signed.split(";"))
    canonical = "\n".join(["POST", "/", "", canonical_headers, signed,
                           hashlib.sha256(payload).hexdigest()])
    date = datetime.datetime.fromtimestamp(int(timestamp), datetime.timezone.utc).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(["TC3-HMAC-SHA256", timestamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])

    def h(key, msg):
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()
    k = h(h(h(("TC3" + secret).encode(), date), service), "tc3_request")
    return hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), scope


class Handler(http.server.BaseHTTPRequestHandler):
    log_path = None

    def log_message(self, *_):
        pass

    def verdict(self, provider, ok, why, **extra):
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"provider": provider, "ok": ok, "why": why, **extra}) + "\n")

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/aliyun/":
            return self.answer(404, {})
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        required = {"AccessKeyId", "Action", "Format", "PhoneNumbers", "RegionId", "SignName",
                    "SignatureMethod", "SignatureNonce", "SignatureVersion", "TemplateCode",
                    "TemplateParam", "Timestamp", "Version", "Signature"}
        missing = sorted(required - params.keys())
        if missing:
            self.verdict("aliyun", False, f"missing {missing}")
            return self.answer(400, {"Code": "MissingParameter", "Message": f"missing {missing}"})
        fixed = {"Action": "SendSms", "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
                 "Version": "2017-05-25", "Format": "JSON"}
        wrong = {k: params[k] for k, v in fixed.items() if params[k] != v}
        stamp = datetime.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
        if wrong or abs(time.time() - stamp.timestamp()) > 900:
            self.verdict("aliyun", False, f"wrong {wrong} or stale {params['Timestamp']}")
            return self.answer(400, {"Code": "InvalidParameter", "Message": "wrong parameters"})
        try:
            template = json.loads(params["TemplateParam"])
        except ValueError:
            template = None
        signature = params.pop("Signature")
        secret = ALIYUN.get(params["AccessKeyId"])
        if secret is None or aliyun_expected(params, secret) != signature:
            self.verdict("aliyun", False, "signature", to=params["PhoneNumbers"])
            return self.answer(400, {"Code": "SignatureDoesNotMatch",
                                     "Message": "Specified signature is not matched with our calculation."})
        if not isinstance(template, dict):
            self.verdict("aliyun", False, "TemplateParam is not a JSON object")
            return self.answer(200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON 参数不合法"})
        self.verdict("aliyun", True, "signed", to=params["PhoneNumbers"],
                     sign=params["SignName"], template=params["TemplateCode"], params=template)
        if params["PhoneNumbers"].endswith("9"):
            return self.answer(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL",
                                     "Message": "非法手机号", "RequestId": "r1"})
        return self.answer(200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0",
                                 "RequestId": "r0"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        payload = self.rfile.read(length)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/tencent/":
            return self.tencent(payload)
        if path.startswith("/twilio/2010-04-01/Accounts/") and path.endswith("/Messages.json"):
            return self.twilio(path, payload)
        return self.answer(404, {})

    def tencent(self, payload):
        h = {k.lower(): v for k, v in self.headers.items()}
        fixed = {"x-tc-action": "SendSms", "x-tc-version": "2021-01-11",
                 "content-type": "application/json; charset=utf-8"}
        wrong = {k: h.get(k) for k, v in fixed.items() if h.get(k) != v}
        auth = h.get("authorization", "")
        if wrong or not auth.startswith("TC3-HMAC-SHA256 ") or "x-tc-region" not in h:
            self.verdict("tencent", False, f"headers {wrong} {auth[:20]}")
            return self.answer(200, {"Response": {"Error": {"Code": "MissingParameter",
                                                            "Message": "headers"}}})
        parts = dict(p.strip().split("=", 1) for p in auth[len("TC3-HMAC-SHA256 "):].split(","))
        secret_id, scope = parts["Credential"].split("/", 1)
        timestamp = h.get("x-tc-timestamp", "0")
        secret = TENCENT.get(secret_id)
        expected, want_scope = tc3_expected(secret or "", h, parts["SignedHeaders"], payload,
                                            timestamp, "sms")
        signed = set(parts["SignedHeaders"].split(";"))
        if (secret is None or expected != parts["Signature"] or scope != want_scope
                or not {"content-type", "host"} <= signed
                or abs(time.time() - int(timestamp)) > 300):
            self.verdict("tencent", False, "signature")
            return self.answer(200, {"Response": {"Error": {
                "Code": "AuthFailure.SignatureFailure",
                "Message": "The provided credentials could not be validated."},
                "RequestId": "r2"}})
        body = json.loads(payload)
        shape = {"PhoneNumberSet": list, "SmsSdkAppId": str, "SignName": str,
                 "TemplateId": str, "TemplateParamSet": list}
        bad = [k for k, t in shape.items() if not isinstance(body.get(k), t)]
        if bad:
            self.verdict("tencent", False, f"body {bad}")
            return self.answer(200, {"Response": {"Error": {"Code": "InvalidParameter",
                                                            "Message": f"{bad}"}}})
        self.verdict("tencent", True, "signed", to=body["PhoneNumberSet"],
                     app=body["SmsSdkAppId"], template=body["TemplateId"],
                     params=body["TemplateParamSet"])
        status = [{"SerialNo": "s", "PhoneNumber": n, "Fee": 1, "SessionContext": "",
                   "Code": "Ok", "Message": "send success", "IsoCode": "CN"}
                  for n in body["PhoneNumberSet"]]
        for s in status:
            if s["PhoneNumber"].endswith("9"):
                s.update(Code="InvalidParameterValue.IncorrectPhoneNumber",
                         Message="手机号格式错误")
        return self.answer(200, {"Response": {"SendStatusSet": status, "RequestId": "r3"}})

    def twilio(self, path, payload):
        sid = path.split("/")[4]
        auth = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{sid}:{TWILIO.get(sid, '')}".encode()).decode()
        if sid not in TWILIO or auth != expected:
            self.verdict("twilio", False, "authentication")
            return self.answer(401, {"code": 20003, "message": "Authenticate", "status": 401})
        if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            self.verdict("twilio", False, "content type")
            return self.answer(400, {"code": 20001, "message": "form", "status": 400})
        form = dict(urllib.parse.parse_qsl(payload.decode()))
        if not {"To", "From", "Body"} <= form.keys():
            self.verdict("twilio", False, f"form {sorted(form)}")
            return self.answer(400, {"code": 21604, "message": "A 'To' phone number is required.",
                                     "status": 400})
        self.verdict("twilio", True, "authenticated", to=form["To"], body=form["Body"],
                     sender=form["From"])
        if form["To"].endswith("9"):
            return self.answer(400, {"code": 21211, "status": 400,
                                     "message": f"The 'To' number {form['To']} is not a valid phone number."})
        return self.answer(201, {"sid": "SM0123456789abcdef", "status": "queued",
                                 "to": form["To"], "from": form["From"]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    Handler.log_path = a.log
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
