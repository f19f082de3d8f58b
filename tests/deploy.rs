//! The deployment files, checked without kubectl or docker: `deploy/kubernetes/daemonset.yaml`
//! parses as YAML (a small reader of the block subset Kubernetes manifests use, here) and
//! names the image, capabilities, host PID namespace, mounts and metrics port that the
//! README's "Fleets" section documents; the Dockerfile builds `FROM scratch` with only the
//! static binary.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Str(String),
    List(Vec<Yaml>),
    Map(BTreeMap<String, Yaml>),
}

impl Yaml {
    fn get(&self, key: &str) -> &Yaml {
        match self {
            Yaml::Map(m) => m
                .get(key)
                .unwrap_or_else(|| panic!("no key {key:?} in {m:?}")),
            other => panic!("{key:?} looked up in a non-mapping {other:?}"),
        }
    }
    fn path(&self, keys: &str) -> &Yaml {
        keys.split('.').fold(self, |v, k| v.get(k))
    }
    fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }
    fn list(&self) -> &[Yaml] {
        match self {
            Yaml::List(l) => l,
            other => panic!("not a list: {other:?}"),
        }
    }
    fn strs(&self) -> Vec<&str> {
        self.list().iter().map(Yaml::str).collect()
    }
}

/// Lines without comments and blank lines: (indent, text).
fn lines(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.contains('\t') {
            return Err(format!("line {}: a tab (YAML indents with spaces)", n + 1));
        }
        let mut line = String::new();
        let mut quote = None;
        for c in raw.chars() {
            match (quote, c) {
                (None, '#') if line.is_empty() || line.ends_with(' ') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            line.push(c);
        }
        if quote.is_some() {
            return Err(format!("line {}: unterminated quote", n + 1));
        }
        let trimmed = line.trim_end();
        if trimmed.trim().is_empty() {
            continue;
        }
        let indent = trimmed.len() - trimmed.trim_start().len();
        out.push((indent, trimmed.trim_start().to_string()));
    }
    Ok(out)
}

fn scalar(text: &str) -> Result<Yaml, String> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or(format!("unclosed [ in {t}"))?;
        if inner.trim().is_empty() {
            return Ok(Yaml::List(Vec::new()));
        }
        return inner
            .split(',')
            .map(scalar)
            .collect::<Result<_, _>>()
            .map(Yaml::List);
    }
    for q in ['"', '\''] {
        if let Some(inner) = t.strip_prefix(q) {
            let inner = inner.strip_suffix(q).ok_or(format!("bad quoting in {t}"))?;
            return Ok(Yaml::Str(inner.to_string()));
        }
    }
    if t.starts_with('{') || t.starts_with('&') || t.starts_with('*') || t.starts_with('|') {
        return Err(format!("outside the subset this reader knows: {t}"));
    }
    Ok(Yaml::Str(t.to_string()))
}

/// `key: value` split at the first `: ` (or a trailing `:`) outside quotes.
fn key_value(text: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(k) = text.strip_suffix(':') {
        (k, "")
    } else {
        let i = text.find(": ")?;
        (&text[..i], &text[i + 2..])
    };
    if key.is_empty() || key.contains(' ') && !key.starts_with('"') {
        return None;
    }
    Some((key.trim_matches('"').to_string(), rest))
}

/// Parses the block at `lines[*i..]` whose lines are indented exactly `indent`.
fn block(lines: &[(usize, String)], i: &mut usize, indent: usize) -> Result<Yaml, String> {
    let is_list = lines[*i].1.starts_with("- ") || lines[*i].1 == "-";
    if is_list {
        let mut items = Vec::new();
        while *i < lines.len() && lines[*i].0 == indent && lines[*i].1.starts_with('-') {
            let rest = lines[*i].1[1..].trim_start().to_string();
            if rest.is_empty() {
                *i += 1;
                items.push(block(lines, i, lines.get(*i).map_or(0, |l| l.0))?);
            } else if key_value(&rest).is_some() {
                // A mapping that starts on the dash's line: its keys sit at indent + 2.
                let mut sub = lines.to_vec();
                sub[*i] = (indent + 2, rest);
                items.push(block(&sub, i, indent + 2)?);
            } else {
                items.push(scalar(&rest)?);
                *i += 1;
            }
        }
        return Ok(Yaml::List(items));
    }
    let mut map = BTreeMap::new();
    while *i < lines.len() && lines[*i].0 == indent {
        let (key, rest) = key_value(&lines[*i].1)
            .ok_or_else(|| format!("not `key: value`: {:?}", lines[*i].1))?;
        *i += 1;
        let value = if rest.trim().is_empty() {
            match lines.get(*i) {
                Some((n, _)) if *n > indent => block(lines, i, *n)?,
                // A list may sit at the key's own indent.
                Some((n, t)) if *n == indent && t.starts_with('-') => block(lines, i, *n)?,
                _ => Yaml::Str(String::new()),
            }
        } else {
            scalar(rest)?
        };
        if map.insert(key.clone(), value).is_some() {
            return Err(format!("duplicate key {key}"));
        }
    }
    if *i < lines.len() && lines[*i].0 > indent {
        return Err(format!("unexpected indentation at {:?}", lines[*i].1));
    }
    Ok(Yaml::Map(map))
}

fn parse(text: &str) -> Result<Yaml, String> {
    let lines = lines(text)?;
    if lines.is_empty() {
        return Err("empty document".into());
    }
    let mut i = 0;
    let doc = block(&lines, &mut i, lines[0].0)?;
    if i != lines.len() {
        return Err(format!("trailing lines from {:?}", lines[i].1));
    }
    Ok(doc)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_yaml_reader_reads_what_it_claims_and_refuses_the_rest() {
    let doc = parse("a:\n  b: [x, \"y\"]\n  c:\n    - name: n\n      v: 1\n    - plain\nd: 'q # not a comment' # a comment\n").unwrap();
    assert_eq!(doc.path("a.b").strs(), ["x", "y"]);
    assert_eq!(doc.path("a.c").list()[0].get("v").str(), "1");
    assert_eq!(doc.path("a.c").list()[1].str(), "plain");
    assert_eq!(doc.get("d").str(), "q # not a comment");
    for bad in [
        "a:\n\tb: 1\n",
        "a: 1\na: 2\n",
        "a: [1\n",
        "a: 1\n    b: 2\n",
        "just text\n",
        "a: \"x\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn daemonset_names_what_the_readme_documents() {
    let ds = parse(&read("deploy/kubernetes/daemonset.yaml")).expect("daemonset.yaml parses");
    let readme = read("README.md");
    let fleets = readme
        .split("\n## Fleets\n")
        .nth(1)
        .expect("README has a Fleets section")
        .split("\n## ")
        .next()
        .unwrap();
    assert_eq!(ds.get("kind").str(), "DaemonSet");
    assert_eq!(ds.get("apiVersion").str(), "apps/v1");
    let pod = ds.path("spec.template.spec");
    assert_eq!(pod.get("hostPID").str(), "true");
    let containers = pod.get("containers").list();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let image = c.get("image").str();
    assert!(
        fleets.contains(image),
        "README's Fleets names the image {image}"
    );
    let args = c.get("args").strs();
    assert!(args.contains(&"--json") && args.contains(&"--metrics"));
    let caps = c.path("securityContext.capabilities");
    assert_eq!(caps.get("drop").strs(), ["ALL"]);
    let added = caps.get("add").strs();
    for cap in ["BPF", "PERFMON"] {
        assert!(added.contains(&cap), "{cap} in {added:?}");
    }
    for cap in &added {
        assert!(
            fleets.contains(&format!("CAP_{cap}")),
            "README's Fleets explains CAP_{cap}"
        );
    }
    assert_eq!(c.path("securityContext.privileged").str(), "false");
    let mounts = c.get("volumeMounts").list();
    let volumes = pod.get("volumes").list();
    for path in ["/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup"] {
        let mount = mounts
            .iter()
            .find(|m| m.get("mountPath").str() == path)
            .unwrap_or_else(|| panic!("no mount of {path}"));
        assert_eq!(mount.get("readOnly").str(), "true", "{path} read-only");
        let name = mount.get("name").str();
        let volume = volumes
            .iter()
            .find(|v| v.get("name").str() == name)
            .unwrap_or_else(|| panic!("no volume {name}"));
        assert_eq!(volume.path("hostPath.path").str(), path);
        assert!(
            fleets.contains(path),
            "README's Fleets names the mount {path}"
        );
    }
    let port = c.get("ports").list()[0].get("containerPort").str();
    assert!(args.iter().any(|a| a.ends_with(&format!(":{port}"))));
    let annotations = ds.path("spec.template.metadata.annotations");
    assert_eq!(annotations.get("prometheus.io/scrape").str(), "true");
    assert_eq!(annotations.get("prometheus.io/port").str(), port);
    assert!(
        fleets.contains(port),
        "README's Fleets names the metrics port"
    );
}

#[test]
fn dockerfile_is_from_scratch_with_only_the_static_binary() {
    let docker = read("Dockerfile");
    let instructions: Vec<&str> = docker
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(instructions[0], "FROM scratch");
    let copies: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("COPY"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert!(
        copies[0].contains("target/${TARGET}/release/conntrace"),
        "{copies:?}"
    );
    assert!(instructions.contains(&"ARG TARGET=x86_64-unknown-linux-musl"));
    assert!(
        !instructions.iter().any(|l| l.starts_with("RUN")),
        "scratch has no shell"
    );
}
