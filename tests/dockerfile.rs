//! Rules the Dockerfile must keep: nothing runs under emulation (every stage with a RUN is on
//! `$BUILDPLATFORM`, directly or through the stage it starts from), and the image is distroless,
//! non-root, with an exec-form ENTRYPOINT and a HEALTHCHECK.

use std::collections::HashMap;

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    base: String,
    platform: Option<String>,
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn has(&self, keyword: &str) -> bool {
        self.instructions.iter().any(|(k, _)| k == keyword)
    }

    fn args(&self, keyword: &str) -> Option<&str> {
        self.instructions
            .iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
    }
}

/// Splits a Dockerfile into stages of (keyword, arguments), joining continued lines.
fn parse(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }

    let mut stages: Vec<Stage> = Vec::new();
    for line in logical.iter().filter(|l| !l.trim().is_empty()) {
        let (keyword, args) = line
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((line, ""));
        let keyword = keyword.to_ascii_uppercase();
        let args = args.trim().to_string();
        if keyword == "FROM" {
            let mut words = args.split_whitespace().peekable();
            let platform = words
                .next_if(|w| w.starts_with("--platform="))
                .map(|w| w["--platform=".len()..].to_string());
            let base = words.next().unwrap_or_default().to_string();
            let name = match (words.next(), words.next()) {
                (Some(as_), Some(name)) if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            stages.push(Stage {
                name,
                base,
                platform,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, args));
        }
    }
    stages
}

/// Every rule broken, in words; empty when the Dockerfile is fine.
fn violations(text: &str) -> Vec<String> {
    let stages = parse(text);
    let mut problems = Vec::new();
    let by_name: HashMap<&str, &Stage> = stages
        .iter()
        .filter_map(|s| s.name.as_deref().map(|n| (n, s)))
        .collect();

    let on_build_platform = |stage: &Stage| {
        let mut stage = stage;
        loop {
            if let Some(platform) = &stage.platform {
                return platform == "$BUILDPLATFORM" || platform == "${BUILDPLATFORM}";
            }
            match by_name.get(stage.base.as_str()) {
                Some(parent) => stage = parent,
                None => return false,
            }
        }
    };
    for stage in &stages {
        if stage.has("RUN") && !on_build_platform(stage) {
            let name = stage.name.as_deref().unwrap_or(&stage.base);
            problems.push(format!("stage {name} has RUN but is not on $BUILDPLATFORM"));
        }
    }

    let Some(last) = stages.last() else {
        return vec!["no stages".into()];
    };
    if !last.base.starts_with("gcr.io/distroless/") {
        problems.push(format!("the final stage is {}, not distroless", last.base));
    }
    let non_root = last.base.ends_with(":nonroot")
        || last
            .args("USER")
            .is_some_and(|u| u.starts_with("nonroot") || u.starts_with("65532"));
    if !non_root {
        problems.push("the final stage does not run as the non-root user".into());
    }
    if !last.args("ENTRYPOINT").is_some_and(|a| a.starts_with('[')) {
        problems.push("the final stage has no exec-form ENTRYPOINT".into());
    }
    if !last
        .args("HEALTHCHECK")
        .is_some_and(|a| a.contains("CMD ["))
    {
        problems.push("the final stage has no exec-form HEALTHCHECK".into());
    }
    if last.args("EXPOSE") != Some("9000") {
        problems.push("the final stage does not EXPOSE 9000".into());
    }
    problems
}

fn project_dockerfile() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap()
}

#[test]
fn the_dockerfile_keeps_every_rule() {
    assert_eq!(violations(&project_dockerfile()), Vec::<String>::new());
}

#[test]
fn the_image_build_runs_the_same_script_as_make_cross() {
    let dockerfile = project_dockerfile();
    let makefile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Makefile")).unwrap();
    assert!(dockerfile.contains("scripts/cross-build.sh \"$triple\""));
    assert!(makefile.contains("scripts/cross-build.sh"));
}

/// The sources COPYed (from the build context) into `stage` and the stages it starts from.
fn copied_sources<'a>(stages: &'a [Stage], stage: &'a Stage) -> Vec<&'a str> {
    let mut sources = Vec::new();
    let mut current = Some(stage);
    while let Some(stage) = current {
        for (keyword, args) in &stage.instructions {
            let words: Vec<&str> = args.split_whitespace().collect();
            if keyword == "COPY" && !words.iter().any(|w| w.starts_with("--from=")) {
                sources.extend(&words[..words.len().saturating_sub(1)]);
            }
        }
        current = stages
            .iter()
            .find(|s| s.name.as_deref() == Some(stage.base.as_str()));
    }
    sources
}

#[test]
fn the_build_stage_copies_every_input_cargo_reads() {
    let text = project_dockerfile();
    let stages = parse(&text);
    let build = stages
        .iter()
        .find(|s| {
            s.args("RUN")
                .is_some_and(|a| a.contains("scripts/cross-build.sh"))
        })
        .expect("a stage runs scripts/cross-build.sh");
    let copied = copied_sources(&stages, build);

    // A file that is missing from the image build is one that only fails there: build.rs, for
    // one, is read by cargo because it exists, not because Cargo.toml names it.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for input in ["Cargo.toml", "Cargo.lock", "build.rs", "src", "benches"] {
        if root.join(input).exists() {
            assert!(
                copied.iter().any(|c| c.trim_end_matches('/') == input),
                "the build stage does not COPY {input} (it copies {copied:?})"
            );
        }
    }
}

#[test]
fn a_run_on_the_target_platform_is_caught_even_through_a_parent_stage() {
    let text = "FROM --platform=$BUILDPLATFORM rust AS a\nRUN true\n\
                FROM alpine AS b\nRUN apk add curl\n\
                FROM b AS c\nRUN echo emulated\n\
                FROM gcr.io/distroless/static-debian12:nonroot\nEXPOSE 9000\n\
                HEALTHCHECK CMD [\"/p\", \"healthcheck\"]\nENTRYPOINT [\"/p\"]\n";
    assert_eq!(
        violations(text),
        [
            "stage b has RUN but is not on $BUILDPLATFORM",
            "stage c has RUN but is not on $BUILDPLATFORM"
        ]
    );
}

#[test]
fn a_shell_form_entrypoint_a_root_image_and_no_healthcheck_are_caught() {
    let text = "FROM --platform=$BUILDPLATFORM rust AS build\nRUN cargo build\n\
                FROM debian:12\nCOPY --from=build /p /p\nEXPOSE 9000\nENTRYPOINT /p serve\n";
    let problems = violations(text);
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("not distroless"));
    assert!(problems[1].contains("non-root"));
    assert!(problems[2].contains("ENTRYPOINT"));
    assert!(problems[3].contains("HEALTHCHECK"));
}
