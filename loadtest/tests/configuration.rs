//! docs/configuration.md's tables are generated from the binaries' own flag definitions, so the
//! documentation cannot drift from the code: this test fails when they differ, and
//! `FANOUT_BLESS=1 cargo test -p fanout-loadtest --test configuration` rewrites them.

use clap::CommandFactory;

const BEGIN: &str = "<!-- generated tables: begin -->";
const END: &str = "<!-- generated tables: end -->";

/// One markdown table of a command's flags: flag, environment variable, default, meaning.
fn table(title: &str, command: &clap::Command) -> String {
    let mut out = format!(
        "### `{title}`\n\n| flag | environment | default | meaning |\n| --- | --- | --- | --- |\n"
    );
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let flag = match arg.get_long() {
            Some(long) => format!("`--{long}`"),
            None => format!("`{}` (positional)", id.to_uppercase()),
        };
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_else(|| "—".into());
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .replace('|', "\\|")
            .replace('\n', " ");
        out.push_str(&format!("| {flag} | {env} | {default} | {help} |\n"));
    }
    out
}

fn generated() -> String {
    let loadtest = fanout_loadtest::cli::Cli::command();
    let run = loadtest
        .find_subcommand("run")
        .expect("fanout-loadtest has a run command");
    [
        table("fanout-leaf", &fanout_leaf::cli::Args::command()),
        table("fanout-root", &fanout_root::cli::Args::command()),
        table("fanout-indexer", &fanout_indexer::cli::Cli::command()),
        table("fanout-loadtest run", run),
    ]
    .join("\n")
}

#[test]
fn the_configuration_tables_match_the_flags() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
    let start = doc.find(BEGIN).expect("begin marker") + BEGIN.len();
    let end = doc.find(END).expect("end marker");
    let want = format!("\n{}\n", generated());
    if doc[start..end] == want {
        return;
    }
    if std::env::var_os("FANOUT_BLESS").is_some() {
        let updated = format!("{}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "docs/configuration.md is out of date with the flags; run \
         FANOUT_BLESS=1 cargo test -p fanout-loadtest --test configuration\n\nexpected:\n{want}"
    );
}

#[test]
fn every_flag_of_a_service_can_be_set_from_the_environment() {
    // The services run in containers configured by environment; the tools may take flags only.
    for command in [
        fanout_leaf::cli::Args::command(),
        fanout_root::cli::Args::command(),
        fanout_indexer::cli::Cli::command(),
    ] {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(
                arg.get_env().is_some(),
                "{} --{id} has no environment variable",
                command.get_name()
            );
        }
    }
}
