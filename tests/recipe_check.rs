//! `switchyard recipe check` on real files: every kind of bad recipe gets the right
//! `file:line:col`, message and help; the shipped recipes pass.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `recipe check` with the repository's plugins directory.
fn check(files: &[&Path], extra: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["recipe", "check", "--plugins"])
        .arg(repo().join("plugins"))
        .args(extra)
        .args(files)
        .output()
        .expect("run switchyard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD_STEP: &str = "steps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\n";

/// (case, recipe text, expected "line:col", fragments of the message and help)
fn cases() -> Vec<(&'static str, String, &'static str, Vec<&'static str>)> {
    let with_steps = |head: &str| format!("name: x\n{head}{GOOD_STEP}");
    let with_on = |on: &str| format!("name: x\n{GOOD_STEP}on:\n{on}");
    vec![
        ("syntax error", "name: x\nsteps:\n  - id: a\n    needs: [b, c\n    prompt: hi\n".into(), "5:11", vec!["':'"]),
        ("tab indentation", "name: x\nsteps:\n\t- id: a\n".into(), "3:2", vec!["tabs"]),
        ("unknown step field", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    promt: hi\n".into(), "5:5", vec!["unknown field `promt`", "did you mean `prompt`?"]),
        ("unknown top-level field", with_steps("descripton: hi\n"), "2:1", vec!["unknown field `descripton`", "did you mean `description`?"]),
        ("missing field", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n".into(), "4:5", vec!["missing field `prompt`"]),
        ("wrong type", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\n    needs: a\n".into(), "6:12", vec!["sequence", "write a list"]),
        ("unknown input type", with_steps("inputs:\n  n:\n    type: integer\n"), "4:11", vec!["unknown variant `integer`", "`number`"]),
        ("duplicate key", format!("name: x\nname: y\n{GOOD_STEP}"), "2:1", vec!["`name` is given twice"]),
        ("needs a missing step", "name: x\nsteps:\n  - id: build\n    agent: echo-agent\n    prompt: hi\n  - id: test\n    agent: echo-agent\n    needs: [biuld]\n    prompt: hi\n".into(), "8:13", vec!["needs `biuld`", "did you mean `build`?"]),
        ("cycle", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    needs: [c]\n    prompt: hi\n  - id: b\n    agent: echo-agent\n    needs: [a]\n    prompt: hi\n  - id: c\n    agent: echo-agent\n    needs: [b]\n    prompt: hi\n".into(), "3:9", vec!["cycle: a → c → b → a"]),
        ("needs itself", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    needs: [a]\n    prompt: hi\n".into(), "5:13", vec!["step `a` needs itself"]),
        ("duplicate step id", format!("name: x\n{GOOD_STEP}  - id: a\n    agent: echo-agent\n    prompt: hi\n"), "6:9", vec!["step id `a` is used twice", "line 3"]),
        ("unknown input in a block template", "name: x\ninputs:\n  focus: { type: string }\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: |\n      Look at\n      the {{ inputs.focsu }} please\n".into(), "9:14", vec!["`inputs.focsu`", "did you mean `focus`?"]),
        ("unknown step in a template", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\n  - id: b\n    agent: echo-agent\n    needs: [a]\n    prompt: \"from {{ steps.aa.output }}\"\n".into(), "9:22", vec!["`steps.aa.output`", "did you mean `a`?"]),
        ("output of a step not needed", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: hi\n  - id: b\n    agent: echo-agent\n    prompt: \"from {{ steps.a.output }}\"\n".into(), "8:22", vec!["does not need `a`", "add `a` to the `needs` of `b`"]),
        ("unclosed template", "name: x\nsteps:\n  - id: a\n    agent: echo-agent\n    prompt: \"hello {{ inputs.name\"\n".into(), "5:20", vec!["never closed"]),
        ("event reference outside an event", format!("name: x\n{GOOD_STEP}outputs:\n  o: \"{{{{ event.data.x }}}}\"\n"), "7:10", vec!["only available in the inputs of an `on.event`"]),
        ("bad condition", format!("name: x\n{GOOD_STEP}    if: inputs.x ==\n"), "6:9", vec!["if: the condition ends"]),
        ("unknown plugin", "name: x\nsteps:\n  - id: a\n    agent: echo-agnet\n    prompt: hi\n".into(), "4:12", vec!["no plugin named `echo-agnet`", "did you mean `echo-agent`?"]),
        ("plugin of the wrong kind", "name: x\nsteps:\n  - id: a\n    agent: keyword-trigger\n    prompt: hi\n".into(), "4:12", vec!["has kind `trigger`, but this needs kind `agent-adapter`"]),
        ("bad duration", format!("name: x\n{GOOD_STEP}    timeout: 5 minutes please\n"), "6:14", vec!["`timeout`", "not a duration", "`30s`"]),
        ("enum default not allowed", with_steps("inputs:\n  level:\n    type: enum\n    values: [low, high]\n    default: medium\n"), "6:14", vec!["the default must be one of `low`, `high`"]),
        ("enum without values", with_steps("inputs:\n  level:\n    type: enum\n"), "3:3", vec!["enum without `values`"]),
        ("bad regex", format!("name: x\n{GOOD_STEP}    verify:\n      matches: \"(unclosed\"\n"), "7:16", vec!["not a valid regular expression", "unclosed group"]),
        ("bad cron", with_on("  schedule:\n    - cron: \"0 25 * * *\"\n"), "8:13", vec!["bad cron expression", "1 = Monday"]),
        ("cron with 4 fields", with_on("  schedule:\n    - cron: \"0 9 * *\"\n"), "8:13", vec!["4 fields"]),
        ("bad time zone", with_on("  schedule:\n    - cron: \"0 9 * * 1\"\n      timezone: Europe/Pariss\n"), "9:17", vec!["unknown time zone `Europe/Pariss`", "did you mean `Europe/Paris`?"]),
        ("bad overlap policy", with_on("  schedule:\n    - cron: \"0 9 * * 1\"\n      overlap: skipp\n"), "9:16", vec!["unknown variant `skipp`", "did you mean `skip`?"]),
        ("required input missing from a schedule", format!("name: x\ninputs:\n  diff: {{ type: string, required: true }}\n{GOOD_STEP}on:\n  schedule:\n    - cron: \"0 9 * * 1\"\n"), "10:13", vec!["required input `diff` is not given"]),
        ("schedule input not declared", with_on("  schedule:\n    - cron: \"0 9 * * 1\"\n      inputs: { focus: all }\n"), "9:17", vec!["`focus` is not an input"]),
        ("bad topic pattern", with_on("  event:\n    - topic: \"github.>.push\"\n"), "8:14", vec!["`>` before its last token"]),
        ("trigger plugin of the wrong kind", with_on("  event:\n    - topic: github.push\n      trigger: { plugin: echo-agent }\n"), "9:26", vec!["has kind `agent-adapter`, but this needs kind `trigger`"]),
    ]
}

#[test]
fn every_kind_of_bad_recipe_is_located_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    assert!(cases.len() >= 20);
    for (i, (case, text, at, fragments)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{i:02}.yaml"));
        std::fs::write(&file, text).unwrap();
        let (ok, stdout, stderr) = check(&[&file], &[]);
        assert!(!ok, "{case}: accepted\n{text}");
        let expected = format!("{}:{at}: ", file.display());
        assert!(
            stdout.starts_with(&expected),
            "{case}: expected a problem at {at}, got:\n{stdout}\n--- recipe:\n{text}"
        );
        for f in fragments {
            assert!(stdout.contains(f), "{case}: `{f}` missing from:\n{stdout}");
        }
        assert!(stderr.contains("1 problem(s)"), "{case}: {stderr}");
    }
}

#[test]
fn reports_every_problem_of_a_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.yaml");
    std::fs::write(
        &file,
        "name: many\nsteps:\n  - id: a\n    agent: nope\n    prompt: \"{{ inputs.x }}\"\n    needs: [zz]\n    timeout: soon\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&[&file], &["--json"]);
    assert!(!ok);
    assert!(stderr.contains("4 problem(s)"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let problems = report[0]["problems"].as_array().unwrap();
    let at: Vec<(u64, u64)> = problems
        .iter()
        .map(|p| (p["line"].as_u64().unwrap(), p["column"].as_u64().unwrap()))
        .collect();
    assert_eq!(at, vec![(4, 12), (5, 17), (6, 13), (7, 14)], "{stdout}");
}

#[test]
fn shipped_recipes_pass() {
    let (ok, stdout, stderr) = check(&[&repo().join("recipes")], &[]);
    assert!(ok, "{stdout}\n{stderr}");
    for name in [
        "code-review",
        "debug",
        "feature",
        "refactor",
        "test",
        "daily-digest",
    ] {
        assert!(
            stdout.contains(&format!("recipe `{name}`")),
            "{name} missing:\n{stdout}"
        );
    }
}
