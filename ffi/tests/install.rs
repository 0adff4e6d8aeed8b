#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `scripts/install-ffi PREFIX` puts the library, the headers and `m3ipc.pc` where
//! `cc prog.c $(pkg-config --cflags --libs m3ipc)` finds them: install into a temporary
//! prefix, build a C program exactly that way, run it against the installed shared library.

mod support;

use std::process::Command;
use support::{ShmDir, build_dir, run_ok};

const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include <m3ipc.h>
#include <dvk_compat.h>

int main(void) {
    int32_t dc, a, b, a_ep, b_ep, r;
    message m;
    if (m3_abi_version() != M3_ABI_VERSION) return 10;
    dc = m3_dc_create("inst", NULL);
    if (dc < 0) { fprintf(stderr, "create: %s\n", m3_strerror(dc)); return 11; }
    a = m3_bind(dc, 0, "a", &a_ep);
    b = m3_bind(dc, 1, "b", &b_ep);
    if (a < 0 || b < 0) return 12;
    r = m3_notify(b, a_ep);
    memset(&m, 0, sizeof m);
    if (r == 0) r = m3_receive(a, ANY, &m, TIMEOUT_NOWAIT);
    if (r != 0 || m.m_source != b_ep || m.m_type != NOTIFY_FROM(1)) return 13;
    m3_unbind(a);
    m3_unbind(b);
    if (m3_dc_remove("inst") != 0) return 14;
    printf("OK\n");
    return 0;
}
"#;

#[test]
fn installed_library_builds_with_pkg_config() {
    let so = support::shared_lib();
    support::static_lib();
    let work = build_dir("install");
    let prefix = work.join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let mut install = Command::new("bash");
    install
        .arg(support::ffi_dir().join("../scripts/install-ffi"))
        .arg(&prefix)
        .arg("--lib-dir")
        .arg(so.parent().unwrap());
    run_ok(install);
    for f in [
        "lib/libm3ipc.so",
        "lib/libm3ipc.a",
        "include/m3ipc.h",
        "include/dvk_compat.h",
        "lib/pkgconfig/m3ipc.pc",
    ] {
        assert!(prefix.join(f).exists(), "{f} not installed");
    }

    let pc_path = prefix.join("lib/pkgconfig");
    let mut pc = Command::new("pkg-config");
    pc.args(["--cflags", "--libs", "m3ipc"])
        .env("PKG_CONFIG_PATH", &pc_path);
    let flags = run_ok(pc);
    assert!(flags.contains("-lm3ipc"), "{flags}");

    let src = work.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = work.join("prog");
    // As a user would type it: cc prog.c $(pkg-config --cflags --libs m3ipc)
    let mut cc = Command::new("sh");
    cc.arg("-c")
        .arg(format!(
            "cc -std=c11 -Wall -Wextra -Werror {} $(pkg-config --cflags --libs m3ipc) -o {}",
            src.display(),
            exe.display()
        ))
        .env("PKG_CONFIG_PATH", &pc_path);
    run_ok(cc);

    let shm = ShmDir::new("install");
    let mut run = shm.cmd(&exe);
    run.env("LD_LIBRARY_PATH", prefix.join("lib"));
    assert_eq!(run_ok(run).trim(), "OK");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}
