//! Give `libm3ipc.so` its SONAME, `libm3ipc.so.N` with N the C ABI's version (`M3_ABI_VERSION`
//! in src/lib.rs): a program linked against it records that name and so refuses, at load time,
//! a library whose ABI changed. `scripts/install-ffi` installs the file under that name.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=src/lib.rs");
    let lib = std::fs::read_to_string("src/lib.rs")?;
    let abi = lib
        .lines()
        .find_map(|l| l.trim().strip_prefix("pub const M3_ABI_VERSION: u32 = "))
        .and_then(|rest| rest.strip_suffix(';'))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or("src/lib.rs has no `pub const M3_ABI_VERSION: u32 = N;` line")?;
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libm3ipc.so.{abi}");
    Ok(())
}
