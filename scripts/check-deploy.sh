#!/usr/bin/env bash
# Checks every deployment file that can be checked without Docker, Kubernetes or Grafana:
#
#   Prometheus    promtool check config (bare metal, compose, Kubernetes variants), check rules,
#                 test rules (unit tests of every alert), and the coverage of those tests
#   Alertmanager  amtool check-config, and the receiver each alert routes to
#   YAML          every file under deploy/ parses
#   rules         labels (severity, team), annotations, runbook links to existing sections
#   metrics       every metric and label that rules and dashboards use is in
#                 deploy/prometheus/metric-names.txt (what the services export)
#   dashboards    uid, title, schemaVersion, a provisioned data source on every panel, PromQL
#                 syntax (promtool), SQL run against a freshly migrated database
#   compose       pinned images, ports and health checks against GRIDWATCH_*_ADDR, Prometheus
#                 targets, mounts, environment variables the services read
#   Kubernetes    kustomize render, images, ports, probes, secrets, configuration keys
#                 (config.rs), ingest's stable client ids, disjoint detector shards
#   systemd       systemd-analyze verify, hardening, environment
#   TLS           make-certs.sh, and a real Mosquitto serving the TLS snippet
#   runbook       the retention SQL of docs/runbook.md against a migrated database
#
# Exits non-zero when anything fails. Needs python3 (with PyYAML, else a venv under .run/),
# promtool and amtool (installed with apt when missing and possible), PostgreSQL at
# GRIDWATCH_TEST_PG (default postgres://postgres@127.0.0.1:5432, as the tests) unless
# GRIDWATCH_CHECK_DEPLOY_SKIP_DB=1. Bounded: every external command runs under a timeout.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
root=$(pwd)
failures=0
work=$(mktemp -d "${TMPDIR:-/tmp}/gw-check-deploy.XXXXXX")
pg_server="${GRIDWATCH_TEST_PG:-postgres://postgres@127.0.0.1:5432}"
check_db=""
started_pids=()

cleanup() {
    local pid
    for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null; done
    if [ -n "$check_db" ]; then
        timeout 20 psql -q "$pg_server/postgres" -c "DROP DATABASE IF EXISTS \"$check_db\"" >/dev/null 2>&1
    fi
    rm -rf "$work"
}
trap cleanup EXIT

section() { printf '\n== %s\n' "$*"; }
ok() { printf '  ok    %s\n' "$*"; }
skip() { printf '  skip  %s\n' "$*"; }
fail() {
    printf '  FAIL  %s\n' "$*"
    failures=$((failures + 1))
}
# run DESCRIPTION SECONDS COMMAND...: runs the command under a timeout; prints its output on failure.
run() {
    local desc="$1" seconds="$2" output
    shift 2
    if output=$(timeout "$seconds" "$@" 2>&1); then
        ok "$desc"
    else
        fail "$desc"
        printf '%s\n' "$output" | tail -n 40 | sed 's/^/        /'
    fi
}
free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

section "Tools"
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "  installing prometheus and prometheus-alertmanager (promtool, amtool) with apt"
        export DEBIAN_FRONTEND=noninteractive
        timeout 300 apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >"$work/apt.log" 2>&1 ||
            { timeout 300 apt-get update -qq >>"$work/apt.log" 2>&1 &&
                timeout 300 apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >>"$work/apt.log" 2>&1; } ||
            tail -n 5 "$work/apt.log"
    fi
fi
for tool in promtool amtool; do
    if command -v "$tool" >/dev/null; then ok "$tool: $("$tool" --version 2>&1 | head -n 1)"; else fail "$tool is missing (apt-get install prometheus prometheus-alertmanager)"; fi
done

py=""
for candidate in python3 /usr/bin/python3 "$root/.run/check-deploy-venv/bin/python"; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml, tomllib' 2>/dev/null; then
        py=$candidate
        break
    fi
done
if [ -z "$py" ] && command -v python3 >/dev/null; then
    echo "  creating .run/check-deploy-venv with PyYAML"
    timeout 120 python3 -m venv "$root/.run/check-deploy-venv" &&
        timeout 300 "$root/.run/check-deploy-venv/bin/pip" install -q pyyaml tomli >/dev/null 2>&1 &&
        py="$root/.run/check-deploy-venv/bin/python"
fi
if [ -z "$py" ]; then
    fail "python3 with PyYAML is required"
    echo "FAILED: $failures check(s)"
    exit 1
fi
ok "python: $("$py" --version 2>&1) ($py)"

# ----------------------------------------------------------------------------------------------
# The structural checks, in Python: they print ok/FAIL lines and write what the tool checks below
# need into $work (dashboard queries as a rules file, SQL queries, routing expectations, the
# Kubernetes variant of the Prometheus configuration).
section "Structure (YAML, rules, metrics, dashboards, compose, Kubernetes, systemd)"
cat >"$work/check.py" <<'PYTHON'
import glob, json, os, re, sys
import yaml
try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT, WORK = sys.argv[1], sys.argv[2]
os.chdir(ROOT)
failures = 0

def ok(msg):
    print(f"  ok    {msg}")

def fail(msg):
    global failures
    failures += 1
    print(f"  FAIL  {msg}")

def check(cond, msg, detail=""):
    if cond:
        ok(msg)
    else:
        fail(msg + (f": {detail}" if detail else ""))
    return cond

def load_yaml_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]

# ---------------------------------------------------------------- every YAML file parses
yaml_files = sorted(glob.glob("deploy/**/*.yml", recursive=True) + glob.glob("deploy/**/*.yaml", recursive=True))
bad = []
for path in yaml_files:
    try:
        load_yaml_docs(path)
    except yaml.YAMLError as e:
        bad.append(f"{path}: {e}")
check(not bad, f"{len(yaml_files)} YAML files under deploy/ parse", "; ".join(bad))

# ---------------------------------------------------------------- metric names
METRICS = {}   # name -> set of labels
HISTOGRAMS = set()
for line in open("deploy/prometheus/metric-names.txt"):
    line = line.split("#", 1)[0].split()
    if not line:
        continue
    name, kind, labels = line[0], line[1], set(line[2:])
    labels |= {"job", "instance"}
    if kind == "histogram":
        HISTOGRAMS.add(name)
        METRICS[name + "_bucket"] = labels | {"le"}
        METRICS[name + "_sum"] = labels
        METRICS[name + "_count"] = labels
    else:
        METRICS[name] = labels
ok(f"deploy/prometheus/metric-names.txt lists {len(METRICS)} series names")

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "atan2", "inf", "nan"}

def promql_usage(expr):
    """Metric names, (metric, matcher labels) pairs and grouping labels an expression uses."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"'(?:[^'\\]|\\.)*'", "''", text)
    selectors = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", text):
        labels = re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2))
        selectors.append((m.group(1), labels))
    grouping = []
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping += [l.strip() for l in m.group(2).split(",") if l.strip()]
    bare = re.sub(r"\{[^}]*\}", " ", text)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", bare):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    names |= {s for s, _ in selectors if s}
    return names, selectors, grouping

def check_promql(where, expr, problems):
    names, selectors, grouping = promql_usage(expr)
    known_labels = set()
    for n in names:
        if n not in METRICS:
            problems.append(f"{where}: unknown metric {n}")
        else:
            known_labels |= METRICS[n]
    for name, labels in selectors:
        allowed = METRICS.get(name, set()) if name else {"__name__"}
        for l in labels:
            if name and l not in allowed:
                problems.append(f"{where}: {name} has no label {l}")
    for l in grouping:
        if known_labels and l not in known_labels:
            problems.append(f"{where}: no metric of the expression has label {l}")
    for token in re.findall(r"\bgridwatch_[a-z0-9_]+\b", expr):
        if token not in METRICS:
            problems.append(f"{where}: unknown metric {token}")

# ---------------------------------------------------------------- alert rules
rules_files = sorted(glob.glob("deploy/prometheus/rules/*.yml"))
alerts = []
for path in rules_files:
    for group in load_yaml_docs(path)[0]["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                alerts.append(rule)
runbook = open("docs/runbook.md").read()
anchors = set()
for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", runbook, re.M):
    anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    anchors.add(anchor)
problems = []
for a in alerts:
    name, labels, ann = a["alert"], a.get("labels", {}), a.get("annotations", {})
    sev = labels.get("severity", "")
    sev_values = set(re.findall(r"\b(critical|warning|info)\b", sev)) if "{{" in sev else {sev}
    if not sev_values or not sev_values <= {"critical", "warning", "info"}:
        problems.append(f"{name}: severity {sev!r} is not critical/warning/info")
    if labels.get("team") not in ("theft", "pipeline"):
        problems.append(f"{name}: team label must be theft or pipeline")
    for key in ("summary", "description", "runbook_url"):
        if not ann.get(key, "").strip():
            problems.append(f"{name}: annotation {key} missing")
    url = ann.get("runbook_url", "")
    m = re.fullmatch(r"docs/runbook\.md#([\w-]+)", url)
    if not m or m.group(1) not in anchors:
        problems.append(f"{name}: runbook_url {url!r} is not a section of docs/runbook.md")
    check_promql(f"rule {name}", a["expr"], problems)
    for key, value in ann.items():
        for token in re.findall(r"\bgridwatch_[a-z0-9_]+\b", value):
            if token not in METRICS:
                problems.append(f"rule {name} annotation {key}: unknown metric {token}")
check(not problems and alerts, f"{len(alerts)} alerts: severity, team, summary, description, runbook section, metric names and labels", "; ".join(problems))

# Unit-test coverage: every alert fires in some test and stays silent in another.
fires, silent = set(), set()
for path in sorted(glob.glob("deploy/prometheus/tests/*.test.yml")):
    for test in load_yaml_docs(path)[0]["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
names = {a["alert"] for a in alerts}
check(names <= fires and names <= silent, "every alert has a firing and a non-firing unit test",
      f"never firing: {sorted(names - fires)}, never silent: {sorted(names - silent)}")

# Routing expectations for amtool, and inhibit rules naming existing alerts.
am = load_yaml_docs("deploy/alertmanager/alertmanager.yml")[0]
with open(f"{WORK}/routes.txt", "w") as out:
    for a in alerts:
        labels = a["labels"]
        sev = labels["severity"]
        for s in (set(re.findall(r"\b(critical|warning|info)\b", sev)) if "{{" in sev else {sev}):
            receiver = "oncall-pager" if s == "critical" else f"{labels['team']}-desk"
            out.write(f"{receiver} alertname={a['alert']} severity={s} team={labels['team']} region=east-kz\n")
inhibit_names = set()
for rule in am.get("inhibit_rules", []):
    for m in rule.get("source_matchers", []) + rule.get("target_matchers", []):
        mm = re.match(r'alertname\s*=\s*"?([\w]+)"?', m)
        if mm:
            inhibit_names.add(mm.group(1))
check(inhibit_names <= names, "inhibit rules name existing alerts", str(inhibit_names - names))

# ---------------------------------------------------------------- Grafana
prov = load_yaml_docs("deploy/grafana/provisioning/datasources/datasources.yml")[0]
DATASOURCES = {d["uid"]: d["type"] for d in prov["datasources"]}
check(len(DATASOURCES) == len(prov["datasources"]) and {"prometheus", "grafana-postgresql-datasource"} <= set(DATASOURCES.values()),
      f"provisioned data sources: {DATASOURCES}")
ds_env = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)\}?", open("deploy/grafana/provisioning/datasources/datasources.yml").read().split("apiVersion", 1)[1]))
dash_prov = load_yaml_docs("deploy/grafana/provisioning/dashboards/dashboards.yml")[0]
DASH_PATH = dash_prov["providers"][0]["options"]["path"]

def grafana_subst(expr):
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)

dash_rules, sql_queries, uids, titles = [], [], {}, {}
dash_problems = []
dashboards = sorted(glob.glob("dashboards/*.json"))
for path in dashboards:
    try:
        d = json.load(open(path))
    except ValueError as e:
        dash_problems.append(f"{path}: {e}")
        continue
    uid, title = d.get("uid"), d.get("title")
    if not uid or len(uid) > 40:
        dash_problems.append(f"{path}: uid missing or longer than 40 characters")
    if uid in uids:
        dash_problems.append(f"{path}: uid {uid} also in {uids[uid]}")
    uids[uid] = path
    if not title or title in titles:
        dash_problems.append(f"{path}: title missing or duplicated")
    titles[title] = path
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        dash_problems.append(f"{path}: schemaVersion must be >= 36")
    panels = d.get("panels") or []
    if not panels:
        dash_problems.append(f"{path}: no panels")
    ids = [p.get("id") for p in panels]
    if len(set(ids)) != len(ids):
        dash_problems.append(f"{path}: duplicate panel ids")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    for v in variables.values():
        if v.get("type") == "query":
            vuid = (v.get("datasource") or {}).get("uid")
            if vuid not in DATASOURCES:
                dash_problems.append(f"{path}: variable {v['name']} data source {vuid} is not provisioned")
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            if DATASOURCES.get(vuid) == "prometheus":
                m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
                if not m or m.group(1) not in METRICS or m.group(2) not in METRICS[m.group(1)]:
                    dash_problems.append(f"{path}: variable {v['name']} query {q} names no exported metric/label")
            else:
                sql_queries.append({"where": f"{path} variable {v['name']}", "sql": q, "vars": {}})
    for p in panels:
        where = f"{path} panel {p.get('id')} ({p.get('title')})"
        if not p.get("title") or not p.get("type") or not p.get("gridPos"):
            dash_problems.append(f"{where}: title, type and gridPos are required")
        ds = p.get("datasource") or {}
        if ds.get("uid") not in DATASOURCES or DATASOURCES.get(ds.get("uid")) != ds.get("type"):
            dash_problems.append(f"{where}: data source {ds} is not a provisioned uid/type")
            continue
        if not p.get("targets"):
            dash_problems.append(f"{where}: no queries")
        for t in p.get("targets", []):
            tds = (t.get("datasource") or {}).get("uid")
            if tds != ds["uid"]:
                dash_problems.append(f"{where}: query {t.get('refId')} data source {tds} differs from the panel's")
            if ds["type"] == "prometheus":
                expr = t.get("expr", "")
                check_promql(where, expr, dash_problems)
                rec = re.sub(r"[^a-zA-Z0-9_]", "_", f"dashboard:{uid}:{p['id']}:{t['refId']}")
                dash_rules.append({"record": rec, "expr": grafana_subst(expr)})
            else:
                sql = t.get("rawSql", "")
                used = set(re.findall(r"\$\{?([a-z]\w*)\}?", sql))
                missing = used - set(variables)
                if missing:
                    dash_problems.append(f"{where}: SQL uses undefined variables {missing}")
                sql_queries.append({"where": where, "sql": sql,
                                    "vars": {n: variables[n] for n in used if n in variables},
                                    "columns": p.get("title") == "Anomalies" and "anomalies" in sql})
    # The auditors' links open the anomaly on the web page (which asks for a token), never the
    # JSON API (which answers 401 to a browser).
    for p in panels:
        links = [prop["value"] for o in (p.get("fieldConfig") or {}).get("overrides", []) if o["matcher"]["options"] == "id"
                 for prop in o["properties"] if prop["id"] == "links"]
        urls = [l["url"] for ls in links for l in ls]
        if any("/anomalies/" in u or "/api/" in u for u in urls):
            dash_problems.append(f"{path} panel {p.get('id')}: an id links to the JSON API, which needs a bearer token: link to ${{web_base_url}}/#anomaly=${{__data.fields.id}}")
        if p.get("title") == "Anomalies" and path.endswith("auditors.json"):
            if "${web_base_url}/#anomaly=${__data.fields.id}" not in urls or "web_base_url" not in variables:
                dash_problems.append(f"{path}: the anomalies table must link id to ${{web_base_url}}/#anomaly=${{__data.fields.id}}")
check(dashboards and not dash_problems,
      f"{len(dashboards)} dashboards: uid, title, schemaVersion, provisioned data sources, metric names and labels",
      "; ".join(dash_problems))
with open(f"{WORK}/dashboard-queries.rules.yml", "w") as f:
    yaml.safe_dump({"groups": [{"name": "dashboards", "rules": dash_rules}]}, f)
with open(f"{WORK}/sql.json", "w") as f:
    json.dump(sql_queries, f)
ok(f"{len(dash_rules)} PromQL and {len(sql_queries)} SQL dashboard queries collected")

# ---------------------------------------------------------------- what the services read
source = ""
for path in glob.glob("services/**/*.rs", recursive=True):
    source += open(path).read() + "\n"
ENV_OK = set(re.findall(r'"(GRIDWATCH_[A-Z0-9_]+)"', source))
not_exported = sorted(n for n in METRICS if n != "up" and not n.endswith(("_bucket", "_sum", "_count"))
                      and f'"{n}"' not in source)
if not_exported:
    print(f"  note  listed but not yet in services/: {', '.join(not_exported)}")

# Configuration structs: field names per struct, from services/gridwatch/src.
STRUCTS = {}
for path in glob.glob("services/gridwatch/src/**/*.rs", recursive=True):
    text = open(path).read()
    for m in re.finditer(r"pub struct (\w+)\s*\{(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"pub (\w+):\s*([\w:<>]+)", m.group(2)))
        STRUCTS.setdefault(m.group(1), fields)

def check_toml(table, struct, where, problems):
    fields = STRUCTS.get(struct, {})
    for key, value in table.items():
        if key not in fields:
            problems.append(f"{where}: unknown key {key} (not a field of {struct})")
            continue
        ftype = re.sub(r"^Option<(.*)>$", r"\1", fields[key])
        if isinstance(value, dict):
            if ftype not in STRUCTS:
                problems.append(f"{where}: {key} is a table but {ftype} is not a struct")
            else:
                check_toml(value, ftype, f"{where}.{key}", problems)

def addr_port(value):
    return int(str(value).rsplit(":", 1)[1])

DEFAULTS = {"GRIDWATCH_HTTP_ADDR": "127.0.0.1:8080", "GRIDWATCH_METRICS_ADDR": "127.0.0.1:9464"}
m = re.search(r'http_addr:\s*SocketAddr::from\(\(\[[\d, ]+\],\s*(\d+)\)\)', source)
if m:
    DEFAULTS["GRIDWATCH_HTTP_ADDR"] = f"127.0.0.1:{m.group(1)}"
m = re.search(r'metrics_addr:\s*SocketAddr::from\(\(\[[\d, ]+\],\s*(\d+)\)\)', source)
if m:
    DEFAULTS["GRIDWATCH_METRICS_ADDR"] = f"127.0.0.1:{m.group(1)}"

def served_port(command, env):
    """Where a gridwatch command serves /metrics: run and api on the HTTP address."""
    key = "GRIDWATCH_HTTP_ADDR" if command in ("run", "api") else "GRIDWATCH_METRICS_ADDR"
    return addr_port(env.get(key, DEFAULTS[key]))

JOB_OF = {"run": "gridwatch", "ingest": "gridwatch-ingest", "detect": "gridwatch-detect", "api": "gridwatch-api"}

# Least privilege (migrations/0005_roles.sql, docs/runbook.md "Database roles"): only `gridwatch
# migrate` connects as the schema's owner; each service connects as its own login role, a member of
# its group role, and never migrates (its role may not change the schema).
LOGIN_OF = {"run": "gridwatch_run_login", "ingest": "gridwatch_ingest_login",
            "detect": "gridwatch_detector_login", "api": "gridwatch_api_login"}

def db_user(url):
    m = re.match(r"postgres(?:ql)?://([^:@/]+)[:@]", str(url))
    return m.group(1) if m else None

def pinned(image):
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")

# ---------------------------------------------------------------- Dockerfile
problems = []
dockerfile = open("deploy/compose/Dockerfile").read()
for image in re.findall(r"^FROM\s+(\S+)", dockerfile, re.M):
    if not pinned(image):
        problems.append(f"FROM {image} is not pinned to a tag")
docker_env = dict(re.findall(r"(GRIDWATCH_\w+)=(\S+)", dockerfile))
exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", dockerfile, re.M) for p in line.split()}
for key in ("GRIDWATCH_HTTP_ADDR", "GRIDWATCH_METRICS_ADDR"):
    if key in docker_env and addr_port(docker_env[key]) not in exposed:
        problems.append(f"EXPOSE lacks the port of {key}={docker_env[key]}")
if "/usr/local/bin/gridwatch" not in re.split(r"^FROM", dockerfile, flags=re.M)[-1]:
    problems.append("the runtime stage must install /usr/local/bin/gridwatch")
if "cargo build --release" not in dockerfile:
    problems.append("the builder must run cargo build --release")
for key in docker_env:
    if key not in ENV_OK:
        problems.append(f"{key} is not read by the services")
check(not problems, "deploy/compose/Dockerfile: pinned bases, cargo build --release, /usr/local/bin/gridwatch, EXPOSE matches its addresses", "; ".join(problems))

# ---------------------------------------------------------------- docker compose
problems = []
compose_dir = "deploy/compose"
compose = load_yaml_docs(f"{compose_dir}/docker-compose.yml")[0]
services = compose["services"]
declared_volumes = set((compose.get("volumes") or {}).keys())

def env_default(value):
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))

gw_image = None
gw_services = {}
for name, svc in services.items():
    image = svc.get("image", "")
    if not pinned(env_default(image)):
        problems.append(f"{name}: image {image} is not pinned to a tag")
    if env_default(image).startswith("gridwatch:"):
        gw_image = gw_image or env_default(image)
        if env_default(image) != gw_image:
            problems.append(f"{name}: image {image} differs from {gw_image}")
        build = svc.get("build") or {}
        dockerfile_path = os.path.normpath(os.path.join(compose_dir, build.get("context", "."), build.get("dockerfile", "Dockerfile")))
        if dockerfile_path != "deploy/compose/Dockerfile":
            problems.append(f"{name}: builds {dockerfile_path}, not deploy/compose/Dockerfile")
        command = (svc.get("command") or ["run"])[0]
        env = dict(docker_env)
        env.update({k: env_default(v) for k, v in (svc.get("environment") or {}).items()})
        for key in env:
            if key.startswith("GRIDWATCH_") and key not in ENV_OK:
                problems.append(f"{name}: {key} is not read by the services")
        gw_services[name] = (command, env)
        if command in ("run", "api", "ingest", "detect"):
            port = served_port(command, env)
            health = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
            hm = re.search(r"/dev/tcp/127\.0\.0\.1/(\d+)", health)
            http_port = addr_port(env.get("GRIDWATCH_HTTP_ADDR", DEFAULTS["GRIDWATCH_HTTP_ADDR"]))
            expected = http_port if command in ("run", "api") else port
            if not hm or int(hm.group(1)) != expected:
                problems.append(f"{name}: health check must probe port {expected}")
            for mapping in svc.get("ports", []):
                container = int(env_default(mapping).rsplit(":", 1)[1])
                if container != http_port:
                    problems.append(f"{name}: publishes {container}, its GRIDWATCH_HTTP_ADDR port is {http_port}")
    for vol in svc.get("volumes", []):
        src = env_default(vol).split(":")[0]
        if src.startswith((".", "/")):
            host = os.path.normpath(os.path.join(compose_dir, src))
            if not os.path.exists(host) and not host.startswith("deploy/tls/certs"):
                problems.append(f"{name}: mounts {src}, which does not exist")
        elif src not in declared_volumes:
            problems.append(f"{name}: volume {src} is not declared")
    deps = svc.get("depends_on") or {}
    for dep in (deps if isinstance(deps, list) else deps.keys()):
        if dep not in services:
            problems.append(f"{name}: depends on unknown service {dep}")
# Prometheus targets of the compose layout: each names a service serving that job on that port.
for path in sorted(glob.glob(f"{compose_dir}/prometheus-targets/*.yml")):
    job = os.path.basename(path)[:-4]
    for group in load_yaml_docs(path)[0] if load_yaml_docs(path) else []:
        for target in group["targets"]:
            host, port = target.rsplit(":", 1)
            if host not in services:
                problems.append(f"{path}: {target} is no compose service")
            elif host in gw_services:
                command, env = gw_services[host]
                if JOB_OF.get(command) != job or served_port(command, env) != int(port):
                    problems.append(f"{path}: {target} serves job {JOB_OF.get(command)} on port {served_port(command, env)}")
compose_text = open(f"{compose_dir}/docker-compose.yml").read()
interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", compose_text))
documented = {l.split("=", 1)[0] for l in open(f"{compose_dir}/.env.example").read().splitlines() if l and not l.startswith("#")}
if interpolated != documented:
    problems.append(f".env.example and docker-compose.yml differ: {sorted(interpolated ^ documented)}")
grafana = services.get("grafana", {})
gf_env = set((grafana.get("environment") or {}).keys())
if not ds_env <= gf_env:
    problems.append(f"grafana lacks {sorted(ds_env - gf_env)} used by datasources.yml")
gf_mounts = {env_default(v).split(":")[1]: os.path.normpath(os.path.join(compose_dir, env_default(v).split(":")[0])) for v in grafana.get("volumes", []) if env_default(v).startswith(".")}
if gf_mounts.get(DASH_PATH) != "dashboards" or gf_mounts.get("/etc/grafana/provisioning") != "deploy/grafana/provisioning":
    problems.append("grafana must mount dashboards/ at the provider's path and deploy/grafana/provisioning")
roles_init = open(f"{compose_dir}/postgres-init/20-service-roles.sh").read()
owner = str((services.get("postgres", {}).get("environment") or {}).get("POSTGRES_USER"))
for name, (command, env) in gw_services.items():
    user = db_user(env.get("GRIDWATCH_DATABASE_URL", ""))
    if command == "migrate":
        if user != owner:
            problems.append(f"{name}: migrates as {user}, not as the schema's owner {owner}")
    elif command in LOGIN_OF:
        if user != LOGIN_OF[command]:
            problems.append(f"{name}: connects as {user}, not as its own login role {LOGIN_OF[command]}")
        elif f"'{user}'" not in roles_init:
            problems.append(f"{name}: login role {user} is not created by postgres-init/20-service-roles.sh")
        if env.get("GRIDWATCH_MIGRATE") != "false":
            problems.append(f"{name}: must not migrate (GRIDWATCH_MIGRATE=false): its role cannot change the schema")
check(not problems, f"docker-compose.yml: {len(services)} services, pinned images, ports, health checks, targets, mounts, environment, a database role per service", "; ".join(problems))

# ---------------------------------------------------------------- Prometheus file_sd targets
problems = []
for path in sorted(glob.glob("deploy/prometheus/targets/*.yml") + glob.glob(f"{compose_dir}/prometheus-targets/*.yml")):
    docs = load_yaml_docs(path)
    groups = docs[0] if docs else []
    if not isinstance(groups, list) or any(not isinstance(g, dict) or not isinstance(g.get("targets"), list) for g in groups):
        problems.append(f"{path}: must be a list of {{targets: [...]}}")
prom = load_yaml_docs("deploy/prometheus/prometheus.yml")[0]
jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
for job in JOB_OF.values():
    if job not in jobs:
        problems.append(f"prometheus.yml has no job {job}")
    for sd in jobs.get(job, {}).get("file_sd_configs", []):
        for f in sd["files"]:
            if not os.path.exists(os.path.join("deploy/prometheus", f)):
                problems.append(f"prometheus.yml: {f} missing")
            if not os.path.exists(os.path.join(compose_dir, "prometheus-targets", os.path.basename(f))):
                problems.append(f"deploy/compose/prometheus-targets lacks {os.path.basename(f)}")
check(not problems, "Prometheus target files (bare metal and compose) are valid file_sd lists, one per job", "; ".join(problems))

# The Kubernetes variant, with pod discovery swapped for file discovery so that a promtool built
# without Kubernetes discovery (Debian's) still checks the rest: relabelling, rules, alerting.
k8s_prom = load_yaml_docs("deploy/prometheus/prometheus.kubernetes.yml")[0]
os.makedirs(f"{WORK}/prom-k8s", exist_ok=True)
for job in k8s_prom["scrape_configs"]:
    if job.pop("kubernetes_sd_configs", None) is not None:
        job["file_sd_configs"] = [{"files": ["none.yml"]}]
with open(f"{WORK}/prom-k8s/prometheus.yml", "w") as f:
    yaml.safe_dump(k8s_prom, f)
relabel_jobs = set()
for job in k8s_prom["scrape_configs"]:
    for r in job.get("relabel_configs", []):
        if r.get("target_label") == "job" and "keep" not in r.get("action", "replace"):
            relabel_jobs.add(job["job_name"])
check(relabel_jobs, "prometheus.kubernetes.yml sets the job label from the pods' gridwatch.io/scrape-job")

# ---------------------------------------------------------------- Kubernetes
problems = []
k8s_docs = []
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    for doc in load_yaml_docs(path):
        k8s_docs.append((path, doc))
kust = next(d for p, d in k8s_docs if d.get("kind") == "Kustomization")
listed = set(kust["resources"])
for path in sorted(glob.glob("deploy/k8s/*.yaml")):
    base = os.path.basename(path)
    if base not in ("kustomization.yaml", "secret.example.yaml", "migrate-job.yaml") and base not in listed:
        problems.append(f"{base} is not in kustomization.yaml")
for r in listed:
    if not os.path.exists(f"deploy/k8s/{r}"):
        problems.append(f"kustomization.yaml lists missing {r}")
secret = next((d for p, d in k8s_docs if d.get("kind") == "Secret"), {})
secret_keys = set((secret.get("stringData") or {}).keys())
# One database URL per service, each its own login role; the owner's only for the migrate Job.
SECRET_KEY_OF = {"ingest": "database-url-ingest", "detect": "database-url-detect", "api": "database-url-api"}
for command, key in SECRET_KEY_OF.items():
    user = db_user((secret.get("stringData") or {}).get(key, ""))
    if user != LOGIN_OF[command]:
        problems.append(f"secret.example.yaml: {key} connects as {user}, not {LOGIN_OF[command]}")
migrate_user = db_user((secret.get("stringData") or {}).get("database-url-migrate", ""))
if not migrate_user or migrate_user in LOGIN_OF.values():
    problems.append("secret.example.yaml: database-url-migrate must name the schema's owner")
jobs = [d for p, d in k8s_docs if d.get("kind") == "Job"]
migrate_jobs = [j for j in jobs if j["spec"]["template"]["spec"]["containers"][0].get("args", [])[-1:] == ["migrate"]]
if len(migrate_jobs) != 1:
    problems.append("deploy/k8s needs one Job running `gridwatch migrate` (migrate-job.yaml)")
for job in migrate_jobs:
    spec = job["spec"]["template"]["spec"]
    c = spec["containers"][0]
    ref = next(((e.get("valueFrom") or {}).get("secretKeyRef") or {} for e in c.get("env", []) if e["name"] == "GRIDWATCH_DATABASE_URL"), {})
    if ref.get("name") != "gridwatch-secrets" or ref.get("key") != "database-url-migrate":
        problems.append(f"job {job['metadata']['name']}: GRIDWATCH_DATABASE_URL must come from gridwatch-secrets/database-url-migrate")
    if c["image"] != gw_image:
        problems.append(f"job {job['metadata']['name']}: image {c['image']} differs from compose's {gw_image}")
    if not (spec.get("securityContext") or {}).get("runAsNonRoot") or spec.get("restartPolicy") not in ("OnFailure", "Never"):
        problems.append(f"job {job['metadata']['name']}: pods must run as non-root, restartPolicy OnFailure or Never")
configmap = next(d for p, d in k8s_docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == "gridwatch-config")
toml_text = configmap["data"]["gridwatch.toml"]
toml_cfg = tomllib.loads(toml_text)
check_toml(toml_cfg, "Config", "configmap gridwatch.toml", problems)
if toml_cfg.get("migrate_on_start", True) is not False:
    problems.append("configmap gridwatch.toml: migrate_on_start must be false (the services' roles cannot change the schema; the migrate Job does)")
cm_env = {"GRIDWATCH_HTTP_ADDR": toml_cfg.get("http_addr", DEFAULTS["GRIDWATCH_HTTP_ADDR"]),
          "GRIDWATCH_METRICS_ADDR": toml_cfg.get("metrics_addr", DEFAULTS["GRIDWATCH_METRICS_ADDR"])}
workloads = [(p, d) for p, d in k8s_docs if d.get("kind") in ("Deployment", "StatefulSet")]
shard_regions = {}
pod_labels = []
for path, d in workloads:
    name = d["metadata"]["name"]
    if d["metadata"].get("namespace") != "gridwatch":
        problems.append(f"{name}: namespace must be gridwatch")
    spec = d["spec"]["template"]["spec"]
    labels = d["spec"]["template"]["metadata"].get("labels", {})
    annotations = d["spec"]["template"]["metadata"].get("annotations", {})
    if d["spec"]["selector"]["matchLabels"].items() - labels.items():
        problems.append(f"{name}: selector does not match its pod labels")
    if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
        problems.append(f"{name}: pods must run as non-root")
    for c in spec["containers"]:
        pod_labels.append((labels, {p["name"]: p["containerPort"] for p in c.get("ports", [])}))
        if c["image"] != gw_image:
            problems.append(f"{name}: image {c['image']} differs from compose's {gw_image}")
        args = c.get("args", [])
        command = args[-1] if args else "run"
        if args[:2] == ["--config", "/etc/gridwatch/gridwatch.toml"]:
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            mount = mounts.get("/etc/gridwatch/gridwatch.toml")
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            if not mount or (vols.get(mount["name"], {}).get("configMap") or {}).get("name") != "gridwatch-config":
                problems.append(f"{name}: --config file is not mounted from gridwatch-config")
        env = dict(cm_env)
        env_items = {e["name"]: e for e in c.get("env", [])}
        for key, e in env_items.items():
            if key.startswith("GRIDWATCH_") and key not in ENV_OK:
                problems.append(f"{name}: {key} is not read by the services")
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and (ref["name"] != "gridwatch-secrets" or ref["key"] not in secret_keys):
                problems.append(f"{name}: {key} refers to secret key {ref['name']}/{ref['key']}, not in secret.example.yaml")
            if "value" in e:
                env[key] = e["value"]
        db_ref = ((env_items.get("GRIDWATCH_DATABASE_URL", {}).get("valueFrom") or {}).get("secretKeyRef") or {})
        if command in SECRET_KEY_OF and db_ref.get("key") != SECRET_KEY_OF[command]:
            problems.append(f"{name}: GRIDWATCH_DATABASE_URL must come from secret key {SECRET_KEY_OF[command]} (its own login role)")
        if str(env.get("GRIDWATCH_MIGRATE", "false")).lower() != "false":
            problems.append(f"{name}: must not migrate (GRIDWATCH_MIGRATE)")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        port = served_port(command, env)
        if port not in ports.values():
            problems.append(f"{name}: serves /metrics on {port}, not a container port")
        if str(annotations.get("prometheus.io/port")) != str(port):
            problems.append(f"{name}: prometheus.io/port {annotations.get('prometheus.io/port')} is not {port}")
        if labels.get("gridwatch.io/scrape-job") != JOB_OF.get(command):
            problems.append(f"{name}: gridwatch.io/scrape-job must be {JOB_OF.get(command)}")
        for probe in ("readinessProbe", "livenessProbe"):
            get = (c.get(probe) or {}).get("httpGet")
            if not get or get["path"] not in ("/metrics", "/api/v1/status", "/healthz"):
                problems.append(f"{name}: {probe} must GET /metrics or /api/v1/status")
            elif get["port"] not in ports and get["port"] not in ports.values():
                problems.append(f"{name}: {probe} port {get['port']} is not a container port")
        res = c.get("resources") or {}
        if not res.get("requests") or "memory" not in (res.get("limits") or {}):
            problems.append(f"{name}: resources need requests and a memory limit")
        client_id = env_items.get("GRIDWATCH_MQTT_CLIENT_ID", {})
        from_pod = ((client_id.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") == "metadata.name"
        if command == "ingest":
            if d["spec"].get("replicas", 1) < 2 or "GRIDWATCH_MQTT_SHARE_GROUP" not in env_items or not from_pod:
                problems.append(f"{name}: ingest needs replicas >= 2, a share group and its client id from the pod name")
        consumes_mqtt = command == "ingest" or (command in ("api", "run") and env.get("GRIDWATCH_API_MQTT_PURCHASES", "true") != "false")
        if consumes_mqtt and d["kind"] != "StatefulSet":
            problems.append(f"{name}: an MQTT consumer needs a stable client id, hence a StatefulSet (see deploy/k8s/ingest.yaml)")
        if consumes_mqtt and not from_pod:
            problems.append(f"{name}: each MQTT consumer pod needs its own client id (downward API metadata.name)")
        if command == "detect":
            regions = env.get("GRIDWATCH_DETECTOR_REGIONS", "")
            if d["spec"].get("replicas", 1) != 1 or (d["spec"].get("strategy") or {}).get("type") != "Recreate" or not regions:
                problems.append(f"{name}: a detector shard is 1 replica, Recreate, with GRIDWATCH_DETECTOR_REGIONS")
            for region in filter(None, regions.split(",")):
                if region in shard_regions:
                    problems.append(f"region {region} is in two shards: {shard_regions[region]} and {name}")
                shard_regions[region] = name
for path, d in k8s_docs:
    if d.get("kind") == "Service":
        selector = d["spec"]["selector"]
        matches = [ports for labels, ports in pod_labels if selector.items() <= labels.items()]
        if not matches:
            problems.append(f"service {d['metadata']['name']} selects no pod")
        for port in d["spec"]["ports"]:
            if not all(port["targetPort"] in ports or port["targetPort"] in ports.values() for ports in matches):
                problems.append(f"service {d['metadata']['name']}: targetPort {port['targetPort']} is not a pod port")
check(not problems, f"Kubernetes: {len(workloads)} workloads and the migrate Job; images, ports, probes, secrets, a database role per service, config keys, stable MQTT client ids, disjoint detector shards", "; ".join(problems))

# ---------------------------------------------------------------- systemd
problems = []
REQUIRED = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "Restart": "on-failure", "User": "gridwatch", "CapabilityBoundingSet": ""}
units = sorted(glob.glob("deploy/systemd/*.service"))
unit_env = {}
for path in units:
    section, values = None, {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        values.setdefault((section, key), []).append(value)
    svc = {k: v for (s, k), v in values.items() if s == "Service"}
    for key, value in REQUIRED.items():
        if value not in svc.get(key, []):
            problems.append(f"{path}: {key}={value} missing")
    if "/etc/gridwatch/gridwatch.env" not in svc.get("EnvironmentFile", []):
        problems.append(f"{path}: EnvironmentFile=/etc/gridwatch/gridwatch.env missing")
    exec_start = svc.get("ExecStart", [""])[0].split()
    if exec_start[:1] != ["/usr/local/bin/gridwatch"] or (exec_start[-1] not in JOB_OF and exec_start[-1] != "migrate"):
        problems.append(f"{path}: ExecStart must run /usr/local/bin/gridwatch <run|ingest|detect|api|migrate>")
        continue
    command = exec_start[-1]
    # Each unit's own environment file holds its database URL, hence required (no "-").
    if f"/etc/gridwatch/{command}.env" not in svc.get("EnvironmentFile", []):
        problems.append(f"{path}: EnvironmentFile=/etc/gridwatch/{command}.env (its database URL) missing")
    if not os.path.exists(f"deploy/systemd/{command}.env.example"):
        problems.append(f"{path}: deploy/systemd/{command}.env.example missing")
    if command == "migrate":
        if svc.get("Type") != ["oneshot"]:
            problems.append(f"{path}: the migrate unit must be Type=oneshot")
        continue
    unit_section = {k: " ".join(v).split() for (s, k), v in values.items() if s == "Unit"}
    for key in ("Wants", "After"):
        if "gridwatch-migrate.service" not in unit_section.get(key, []):
            problems.append(f"{path}: {key}=gridwatch-migrate.service missing (the schema is migrated before the service starts)")
    env = dict(e.split("=", 1) for e in svc.get("Environment", []))
    for key in env:
        if key not in ENV_OK:
            problems.append(f"{path}: {key} is not read by the services")
    unit_env[os.path.basename(path)] = (exec_start[-1], env)
ports = {}
for unit, (command, env) in unit_env.items():
    port = served_port(command, env)
    # The separate units must not share a port; the all-in-one unit conflicts with them anyway.
    if port in ports and "run" not in (command, ports[port]):
        problems.append(f"{unit}: port {port} also used by {ports[port]}")
    ports[port] = command
for example in sorted(glob.glob("deploy/systemd/*.env.example")):
    base = os.path.basename(example)
    env_example = dict(l.split("=", 1) for l in open(example).read().splitlines() if l and not l.startswith("#"))
    for key in env_example:
        if key not in ENV_OK:
            problems.append(f"{base}: {key} is not read by the services")
    if base == "gridwatch.env.example":
        for key in ("GRIDWATCH_HTTP_ADDR", "GRIDWATCH_METRICS_ADDR", "GRIDWATCH_MQTT_CLIENT_ID", "GRIDWATCH_DATABASE_URL"):
            if key in env_example:
                problems.append(f"gridwatch.env.example must not set {key} (it belongs in each unit's own file)")
        if env_example.get("GRIDWATCH_MIGRATE") != "false":
            problems.append("gridwatch.env.example must set GRIDWATCH_MIGRATE=false (only gridwatch-migrate.service changes the schema)")
        continue
    command = base.split(".")[0]
    user = db_user(env_example.get("GRIDWATCH_DATABASE_URL", ""))
    if command in LOGIN_OF and user != LOGIN_OF[command]:
        problems.append(f"{base}: connects as {user}, not as its own login role {LOGIN_OF[command]}")
    if command == "migrate" and (not user or user in LOGIN_OF.values()):
        problems.append(f"{base}: must connect as the schema's owner")
bare = load_yaml_docs("deploy/prometheus/targets/gridwatch.yml")[0]
run_port = served_port(*unit_env.get("gridwatch.service", ("run", {})))
if [t for g in bare for t in g["targets"]] != [f"127.0.0.1:{run_port}"]:
    problems.append(f"deploy/prometheus/targets/gridwatch.yml must target gridwatch.service's 127.0.0.1:{run_port}")
check(units and not problems, f"{len(units)} systemd units: hardening, EnvironmentFile, Restart=on-failure, ports, environment, a database role per unit", "; ".join(problems))

sys.exit(min(failures, 100))
PYTHON
timeout 120 "$py" "$work/check.py" "$root" "$work"
structural=$?
failures=$((failures + structural))

section "Prometheus"
if command -v promtool >/dev/null; then
    run "promtool check config deploy/prometheus/prometheus.yml" 60 promtool check config deploy/prometheus/prometheus.yml
    mkdir -p "$work/prom-compose" && cp -r deploy/prometheus/rules "$work/prom-compose/" &&
        cp -r deploy/compose/prometheus-targets "$work/prom-compose/targets" &&
        cp deploy/prometheus/prometheus.yml "$work/prom-compose/"
    run "promtool check config, compose layout (deploy/compose/prometheus-targets)" 60 promtool check config "$work/prom-compose/prometheus.yml"
    if [ -f "$work/prom-k8s/prometheus.yml" ]; then
        cp -r deploy/prometheus/rules "$work/prom-k8s/" && echo '[]' >"$work/prom-k8s/none.yml"
        run "promtool check config, Kubernetes layout (pod discovery swapped for files)" 60 promtool check config "$work/prom-k8s/prometheus.yml"
    fi
    run "promtool check rules deploy/prometheus/rules" 60 promtool check rules deploy/prometheus/rules/*.yml
    run "promtool test rules deploy/prometheus/tests" 120 promtool test rules deploy/prometheus/tests/*.test.yml
    if [ -f "$work/dashboard-queries.rules.yml" ]; then
        run "every dashboard PromQL expression parses (promtool)" 60 promtool check rules "$work/dashboard-queries.rules.yml"
    fi
fi

section "Alertmanager"
if command -v amtool >/dev/null; then
    run "amtool check-config deploy/alertmanager/alertmanager.yml" 60 amtool check-config deploy/alertmanager/alertmanager.yml
    routed=0
    while read -r receiver labels; do
        # shellcheck disable=SC2086 # labels are separate arguments
        if ! out=$(timeout 20 amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml \
            --verify.receivers="$receiver" $labels 2>&1); then
            fail "route: {$labels} should reach $receiver, got: $(printf '%s' "$out" | grep -v Warning | head -n 1)"
        else
            routed=$((routed + 1))
        fi
    done <"$work/routes.txt"
    [ "$routed" -gt 0 ] && ok "$routed alert/severity combinations reach the receiver their team and severity call for"
fi

section "Dashboards SQL and runbook SQL against the schema (migrations/*.sql)"
if [ "${GRIDWATCH_CHECK_DEPLOY_SKIP_DB:-0}" = 1 ]; then
    skip "GRIDWATCH_CHECK_DEPLOY_SKIP_DB=1: SQL not run"
elif ! command -v psql >/dev/null; then
    fail "psql is required to run the dashboards' SQL (or set GRIDWATCH_CHECK_DEPLOY_SKIP_DB=1)"
elif ! timeout 10 psql -q "$pg_server/postgres" -c 'SELECT 1' >/dev/null 2>&1; then
    fail "PostgreSQL is not reachable at $pg_server (GRIDWATCH_TEST_PG), or set GRIDWATCH_CHECK_DEPLOY_SKIP_DB=1"
else
    check_db="gw_check_deploy_$$_$RANDOM"
    db_url="$pg_server/$check_db"
    if timeout 20 psql -q "$pg_server/postgres" -c "CREATE DATABASE \"$check_db\"" >/dev/null; then
        migrated=1
        for migration in migrations/*.sql; do
            if ! out=$(timeout 60 psql -q -X -v ON_ERROR_STOP=1 "$db_url" -f "$migration" 2>&1); then
                fail "migration $migration applies: $out"
                migrated=0
            fi
        done
        [ "$migrated" = 1 ] && ok "temporary database $check_db migrated ($(ls migrations/*.sql | wc -l) migrations)"
        # Each query with Grafana's macros and variables replaced: every variable once as "All" and
        # once with concrete values.
        timeout 60 "$py" - "$work/sql.json" "$work/sql" <<'PYTHON'
import json, os, re, sys
queries, out = json.load(open(sys.argv[1])), sys.argv[2]
os.makedirs(out, exist_ok=True)
FROM, TO = "'2025-09-01T00:00:00Z'::timestamptz", "'2025-10-01T00:00:00Z'::timestamptz"
def render(sql, values):
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)", rf"\1 BETWEEN {FROM} AND {TO}", sql)
    sql = sql.replace("$__timeFrom()", FROM).replace("$__timeTo()", TO)
    for name, value in values.items():
        sql = re.sub(r"\$\{?" + name + r"\}?(?!\w)", value, sql)
    return sql
n = failed = 0
for q in queries:
    variants = [{name: v.get("allValue") or "'__all__'" for name, v in q["vars"].items()}]
    concrete = {}
    for name, v in q["vars"].items():
        opts = [o["value"] for o in v.get("options", []) if o["value"] != "$__all"][:2] or ["east-kz", "west-kz"]
        concrete[name] = ",".join("'" + o.replace("'", "''") + "'" for o in opts)
    if concrete:
        variants.append(concrete)
    for values in variants:
        sql = render(q["sql"], values)
        n += 1
        with open(f"{out}/{n:03d}.sql", "w") as f:
            f.write(f"-- {q['where']}\n{sql}\n")
            if q.get("columns"):
                # The result's columns (name|type), then the query itself.
                f.write("\\gdesc\n" + sql + "\n")
            f.write(";\n")
        if "$" in re.sub(r"'[^']*'", "", sql):
            print(f"  FAIL  {q['where']}: a Grafana macro or variable is left in: {sql}")
            failed += 1
sys.exit(min(failed, 100))
PYTHON
        failures=$((failures + $?))
        sql_ok=0
        sql_total=0
        for file in "$work"/sql/*.sql; do
            sql_total=$((sql_total + 1))
            if out=$(timeout 30 psql -X -q -v ON_ERROR_STOP=1 -At "$db_url" -f "$file" 2>&1); then
                sql_ok=$((sql_ok + 1))
                if grep -q '\\gdesc' "$file"; then
                    columns=$(printf '%s\n' "$out" | grep '|' | cut -d'|' -f1 | paste -sd, -)
                    expected="id,kind,region,node,meter,licence,started_at,energy_wh,loss_kzt,severity,status"
                    [ "$columns" = "$expected" ] || fail "auditors' anomalies table returns $columns, expected $expected"
                fi
            else
                fail "$(head -n 1 "$file" | sed 's/^-- //'): $(printf '%s' "$out" | head -n 3)"
            fi
        done
        [ "$sql_total" -gt 0 ] && [ "$sql_ok" = "$sql_total" ] &&
            ok "$sql_total dashboard SQL queries run (macros and variables substituted; All and concrete values)"

        # The runbook's retention SQL: partitions 500 days old go, those of the last days stay.
        "$py" - docs/runbook.md "$work/retention.sql" <<'PYTHON'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- check-deploy: retention sql -->\s*```sql\n(.*?)```", text, re.S)
open(sys.argv[2], "w").write(m.group(1) if m else "")
PYTHON
        if [ ! -s "$work/retention.sql" ]; then
            fail "docs/runbook.md has no retention SQL block (<!-- check-deploy: retention sql -->)"
        else
            timeout 30 psql -X -q -v ON_ERROR_STOP=1 "$db_url" \
                -c "SELECT gridwatch_ensure_reading_partitions(now() - interval '500 days', now() - interval '498 days')" \
                -c "SELECT gridwatch_ensure_reading_partitions(now() - interval '2 days', now())" \
                -c "INSERT INTO readings VALUES (now() - interval '499 days', 1, 1, NULL), (now(), 2, 1, NULL)" >/dev/null
            if out=$(timeout 60 psql -X -q -v ON_ERROR_STOP=1 "$db_url" -f "$work/retention.sql" 2>&1); then
                left=$(timeout 20 psql -X -At "$db_url" -c "SELECT count(*) FILTER (WHERE to_date(substr(relname, 11), 'YYYYMMDD') < current_date - 400), count(*) FILTER (WHERE relispartition) FROM pg_class WHERE relname ~ '^readings_p[0-9]{8}$'")
                if [ "${left%%|*}" = 0 ] && [ "${left##*|}" -ge 3 ]; then
                    ok "runbook retention SQL drops the partitions older than 400 days and keeps the recent ones"
                else
                    fail "runbook retention SQL left old=${left%%|*} partitions, recent partitions=${left##*|}"
                fi
            else
                fail "runbook retention SQL fails: $(printf '%s' "$out" | head -n 3)"
            fi
        fi
    else
        fail "could not create a temporary database on $pg_server"
    fi
fi

section "Kubernetes"
if command -v kubectl >/dev/null; then
    run "kubectl kustomize deploy/k8s renders" 60 kubectl kustomize deploy/k8s
else
    skip "kubectl not installed: kustomization not rendered (structure checked above)"
fi
skip "no cluster here: manifests are not validated against the API server's schemas"

section "systemd"
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$work/systemd"
    for unit in deploy/systemd/*.service; do
        # verify needs the executable to exist.
        sed 's#/usr/local/bin/gridwatch#/bin/true#' "$unit" >"$work/systemd/$(basename "$unit")"
    done
    out=$(timeout 60 systemd-analyze verify "$work"/systemd/*.service 2>&1)
    if [ -z "$out" ]; then ok "systemd-analyze verify: no warning"; else fail "systemd-analyze verify: $out"; fi
else
    skip "systemd-analyze not installed"
fi

section "MQTT over TLS"
certs="$work/tls/certs"
if out=$(timeout 60 deploy/tls/make-certs.sh -o "$certs" -c M-000001 2>&1) &&
    timeout 10 openssl verify -CAfile "$certs/ca.crt" "$certs/broker.crt" "$certs/M-000001.crt" >/dev/null 2>&1 &&
    openssl x509 -in "$certs/broker.crt" -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:localhost"; then
    ok "make-certs.sh: CA, broker (SAN localhost, 127.0.0.1, mosquitto) and client certificates verify"
    if command -v mosquitto >/dev/null && command -v mosquitto_pub >/dev/null; then
        # Started as root, Mosquitto drops to its own user, which must read the certificates.
        chmod 0755 "$work" "$work/tls" "$certs" && chmod 0644 "$certs"/*.key
        plain=$(free_port)
        tls=$(free_port)
        {
            printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' "$plain"
            sed -e "s#/etc/mosquitto/certs#$certs#" -e "s#^listener 8883#listener $tls 127.0.0.1#" deploy/tls/mosquitto-tls.conf
        } >"$work/tls/mosquitto.conf"
        mosquitto -c "$work/tls/mosquitto.conf" >"$work/tls/broker.log" 2>&1 &
        started_pids+=("$!")
        for _ in $(seq 1 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$tls") 2>/dev/null && break
            sleep 0.1
        done
        if timeout 10 mosquitto_pub -h localhost -p "$tls" --cafile "$certs/ca.crt" -t check -m tls -q 1 >/dev/null 2>&1 &&
            timeout 10 mosquitto_pub -h localhost -p "$tls" --cafile "$certs/ca.crt" \
                --cert "$certs/M-000001.crt" --key "$certs/M-000001.key" -t check -m mtls -q 1 >/dev/null 2>&1; then
            ok "Mosquitto serves deploy/tls/mosquitto-tls.conf: TLS and client-certificate connections accepted"
            if timeout 10 mosquitto_pub -h localhost -p "$tls" --cafile /etc/ssl/certs/ca-certificates.crt -t check -m x >/dev/null 2>&1; then
                fail "a client not trusting the gridwatch CA could connect"
            else
                ok "a client that does not trust the gridwatch CA is refused"
            fi
        else
            fail "Mosquitto with deploy/tls/mosquitto-tls.conf refused a TLS client: $(tail -n 5 "$work/tls/broker.log")"
        fi
    else
        skip "mosquitto not installed: TLS snippet not served"
    fi
else
    fail "make-certs.sh: $out"
fi
skip "no Docker engine, no Kubernetes, no Grafana here: images are not built, containers not started, dashboards not rendered"

echo
if [ "$failures" -gt 0 ]; then
    echo "check-deploy: FAILED ($failures check(s))"
    exit 1
fi
echo "check-deploy: all checks passed"
