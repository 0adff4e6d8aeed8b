#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `scripts/install-ffi PREFIX` puts the library, the headers and `m3ipc.pc` where
//! `cc prog.c $(pkg-config --cflags --libs m3ipc)` finds them: install into a temporary
//! prefix (given relative to the caller's directory), check the SONAME and its symlinks, build
//! a C program exactly that way and run it with no `LD_LIBRARY_PATH` (the rpath in `m3ipc.pc`
//! finds the library), and link one with `-static` from `pkg-config --static`.

mod support;

use std::path::Path;
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

/// Install with `scripts/install-ffi ARGS...` run from `cwd`.
fn install(cwd: &Path, args: &[&str]) -> String {
    let so = support::shared_lib();
    support::static_lib();
    let mut install = Command::new("bash");
    install
        .arg(support::ffi_dir().join("../scripts/install-ffi"))
        .args(args)
        .arg("--lib-dir")
        .arg(so.parent().unwrap())
        .current_dir(cwd);
    run_ok(install)
}

/// `sh -c SCRIPT` with `PKG_CONFIG_PATH` set to `prefix`'s, as a user would type it.
fn sh_with_pkg_config(prefix: &Path, script: String) -> String {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(script)
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"));
    run_ok(sh)
}

/// Run `exe` with no `LD_LIBRARY_PATH` (cargo sets one for tests that names target/, where
/// another libm3ipc.so lies): it prints OK and leaves no region behind.
fn runs_alone(exe: &Path) {
    let shm = ShmDir::new("install");
    let mut run = shm.cmd(exe);
    run.env_remove("LD_LIBRARY_PATH");
    assert_eq!(run_ok(run).trim(), "OK");
    assert!(shm.regions().is_empty(), "{:?}", shm.regions());
}

/// The dynamic section of `file` (`readelf -d`).
fn dynamic_section(file: &Path) -> String {
    let mut readelf = Command::new("readelf");
    readelf.arg("-d").arg(file);
    run_ok(readelf)
}

#[test]
fn installed_library_builds_with_pkg_config() {
    let work = build_dir("install");
    let prefix = work.join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    // A relative PREFIX is the caller's, not the repository's.
    install(&work, &["prefix"]);
    for f in [
        "lib/libm3ipc.so",
        "lib/libm3ipc.a",
        "include/m3ipc.h",
        "include/dvk_compat.h",
        "lib/pkgconfig/m3ipc.pc",
    ] {
        assert!(prefix.join(f).exists(), "{f} not installed");
    }

    // libm3ipc.so -> libm3ipc.so.ABI -> libm3ipc.so.ABI.VERSION, whose SONAME is the middle one.
    let header = std::fs::read_to_string(support::ffi_dir().join("include/m3ipc.h")).unwrap();
    let abi = header
        .lines()
        .find_map(|l| l.strip_prefix("#define M3_ABI_VERSION "))
        .unwrap()
        .trim()
        .to_string();
    let soname = format!("libm3ipc.so.{abi}");
    let real = format!("{soname}.{}", env!("CARGO_PKG_VERSION"));
    let lib = prefix.join("lib");
    assert_eq!(
        std::fs::read_link(lib.join("libm3ipc.so")).unwrap(),
        Path::new(&soname)
    );
    assert_eq!(
        std::fs::read_link(lib.join(&soname)).unwrap(),
        Path::new(&real)
    );
    assert!(lib.join(&real).is_file());
    let dynamic = dynamic_section(&lib.join(&real));
    assert!(
        dynamic.contains(&format!("Library soname: [{soname}]")),
        "{dynamic}"
    );

    let pc_path = prefix.join("lib/pkgconfig");
    let mut pc = Command::new("pkg-config");
    pc.args(["--cflags", "--libs", "m3ipc"])
        .env("PKG_CONFIG_PATH", &pc_path);
    let flags = run_ok(pc);
    assert!(flags.contains("-lm3ipc"), "{flags}");
    // The prefix is not in the loader's path: the flags carry an rpath to it.
    assert!(
        flags.contains(&format!("-Wl,-rpath,{}", lib.display())),
        "{flags}"
    );

    let src = work.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = work.join("prog");
    // As a user would type it: cc prog.c $(pkg-config --cflags --libs m3ipc)
    sh_with_pkg_config(
        &prefix,
        format!(
            "cc -std=c11 -Wall -Wextra -Werror {} $(pkg-config --cflags --libs m3ipc) -o {}",
            src.display(),
            exe.display()
        ),
    );
    // It records the SONAME, not the file or the unversioned link.
    let needed = dynamic_section(&exe);
    assert!(
        needed.contains(&format!("Shared library: [{soname}]")),
        "{needed}"
    );
    runs_alone(&exe);
    // ... and the loader took the installed library.
    let mut ldd = Command::new("ldd");
    ldd.arg(&exe).env_remove("LD_LIBRARY_PATH");
    let resolved = run_ok(ldd);
    assert!(
        resolved.contains(&format!("{soname} => {}", lib.join(&soname).display())),
        "{resolved}"
    );

    // A static link (no -lgcc_s among the private libraries: -static has none to find).
    let static_exe = work.join("prog-static");
    sh_with_pkg_config(
        &prefix,
        format!(
            "cc -static -std=c11 -Wall -Wextra -Werror {} \
             $(pkg-config --static --cflags --libs m3ipc) -o {}",
            src.display(),
            static_exe.display()
        ),
    );
    let statics = dynamic_section(&static_exe);
    assert!(!statics.contains("libm3ipc"), "{statics}");
    runs_alone(&static_exe);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn no_rpath_on_request() {
    let work = build_dir("install-no-rpath");
    let prefix = work.join("p");
    let out = install(&work, &[prefix.to_str().unwrap(), "--no-rpath"]);
    assert!(out.contains("LD_LIBRARY_PATH"), "{out}");
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/m3ipc.pc")).unwrap();
    let libs = pc.lines().find(|l| l.starts_with("Libs:")).unwrap();
    assert_eq!(libs, "Libs: -L${libdir} -lm3ipc");
    let _ = std::fs::remove_dir_all(&work);
}
