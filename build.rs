//! Records which build this is, for `sidecache --version` and `sidecache_build_info`: the git
//! commit of the source (from `GIT_COMMIT` when set, as in a container build without `.git`;
//! else from `git`; else "unknown") and the Cargo profile.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=GIT_COMMIT");
    let commit = std::env::var("GIT_COMMIT")
        .ok()
        .filter(|commit| !commit.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    // Cargo sets PROFILE to the profile the build inherits from: "debug" or "release".
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    // Not SIDECACHE_*: Cargo also sets these in the environment of `cargo run` and `cargo test`,
    // where sidecache refuses unknown variables of its own namespace.
    println!("cargo::rustc-env=BUILD_SIDECACHE_COMMIT={}", commit.trim());
    println!("cargo::rustc-env=BUILD_SIDECACHE_PROFILE={profile}");
    // Rerun when the commit or the dirty state can have changed: a checkout (HEAD), a commit
    // (the branch's ref, or the packed refs), staging (the index), an edit (the sources).
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]);
    let git_files = ["HEAD", "packed-refs", "index"]
        .into_iter()
        .map(str::to_owned)
        .chain(branch.map(|branch| branch.trim().to_owned()))
        .filter_map(|name| git(&["rev-parse", "--git-path", &name]));
    for path in git_files {
        // A path that does not exist would make Cargo rerun this script on every build.
        if std::path::Path::new(path.trim()).exists() {
            println!("cargo::rerun-if-changed={}", path.trim());
        }
    }
    for source in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo::rerun-if-changed={source}");
    }
}

/// The short commit hash, with "-dirty" when tracked files have uncommitted changes.
fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|status| !status.trim().is_empty());
    Some(format!(
        "{}{}",
        commit.trim(),
        if dirty { "-dirty" } else { "" }
    ))
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
