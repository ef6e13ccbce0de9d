//! `checkpoint`'s rules before any dump, as runc 1.1.5 keeps them: runc's own flags, a
//! created container refused, and a `--parent-path` that must be a directory relative to
//! the image path. (CRIU itself is the checkpoint/restore work; see the README.)
mod common;
use common::*;

#[test]
fn checkpoint_takes_runcs_flags() {
    let env = Env::new();
    // podman accepts a runtime for checkpointing only if `checkpoint --help` exits 0.
    let out = env.rt(&["checkpoint", "--help"]);
    out.success();
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--lazy-pages",
        "--status-fd",
        "--page-server",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
    ] {
        out.stdout_has(flag);
    }
    // The control: a flag runc does not have is a usage error.
    env.rt(&["checkpoint", "--no-such-flag", "x"]).failure();
}

#[test]
fn checkpoint_of_a_created_container_is_refused() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["create", "--bundle", b.path(), &id]).success();
    let img = env.tempdir("img");
    let out = env.rt(&["checkpoint", "--image-path", img.to_str().unwrap(), &id]);
    out.failure();
    out.stderr_has("Container cannot be checkpointed in created state");
    // Nothing changed: the container is still there, created.
    assert_eq!(env.status(&id), "created");
    env.rt(&["delete", "--force", &id]).success();
}

#[test]
fn checkpoint_refuses_a_bad_parent_path_and_leaves_the_container_running() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let work = env.tempdir("ck");
    let img = work.join("image-dir");
    let img_s = img.to_str().unwrap();
    let parent = work.join("parent-dir");
    let checkpoint = |parent_path: &str| {
        env.rt(&[
            "checkpoint",
            "--parent-path",
            parent_path,
            "--image-path",
            img_s,
            &id,
        ])
    };
    // Absolute: refused.
    let out = checkpoint(parent.to_str().unwrap());
    out.failure();
    out.stderr_has("--parent-path must be relative");
    // Relative, but not there under the image path: refused, naming it.
    let out = checkpoint("../parent-dir");
    out.failure();
    out.stderr_has("invalid --parent-path");
    // A file, not a directory: refused.
    std::fs::write(&parent, "").unwrap();
    std::fs::create_dir_all(&img).unwrap();
    let out = checkpoint("../parent-dir");
    out.failure();
    out.stderr_has("invalid --parent-path");
    // runc prints Go's lower-case errno text.
    assert!(
        out.stderr.to_lowercase().contains("not a directory"),
        "{out:#?}"
    );
    // The container runs on, untouched by the refusals.
    assert_eq!(env.status(&id), "running");
    env.rt(&["kill", &id, "KILL"]).success();
    env.wait_status(&id, "stopped");
    env.rt(&["delete", &id]).success();
}

#[test]
fn checkpoint_refuses_bad_flag_values() {
    let env = Env::new();
    let b = env.bundle(&["sleep", "1000"]);
    let id = env.id("c");
    env.rt(&["run", "-d", "--bundle", b.path(), &id]).success();
    let img = env.tempdir("img");
    let img_s = img.to_str().unwrap();
    for (flag, value, says) in [
        (
            "--manage-cgroups-mode",
            "loose",
            "Invalid manage cgroups mode",
        ),
        ("--empty-ns", "pid", "is not supported"),
        ("--page-server", "nowhere", "--page-server ADDRESS:PORT"),
    ] {
        let out = env.rt(&["checkpoint", "--image-path", img_s, flag, value, &id]);
        out.failure();
        out.stderr_has(says);
    }
    assert_eq!(env.status(&id), "running");
    env.rt(&["delete", "--force", &id]).success();
}
