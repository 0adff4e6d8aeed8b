//! The library's own ceiling for large reads: formats a MemDevice, writes a 64 MiB file and
//! reads it back in 1 MiB and 64 KiB requests, printing MB/s (median of 5 passes each), next
//! to a plain memcpy of 64 MiB in 1 MiB pieces measured in the same run (the floor of any
//! read that copies once).
//!
//! `cargo run --release -p minixfs --example read_speed`

use std::time::Instant;

use minixfs::{FileSystem, FormatOptions, MemDevice, ROOT};

const MIB: usize = 1 << 20;
const FILE: usize = 64 * MIB;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Die quietly of SIGPIPE, as `ls` does, when the output is a closed pipe (`| head -1`).
    // SAFETY: setting a signal's disposition touches no memory; no thread has started yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let mut fs = FileSystem::format(MemDevice::new(70 * 1024), &FormatOptions::default())?;
    let f = fs.create(ROOT, "big.bin", 0o644)?;
    let chunk: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    let start = Instant::now();
    for i in 0..FILE / MIB {
        fs.write(f, (i * MIB) as u64, &chunk)?;
    }
    fs.sync()?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "write 64 MiB (1 MiB requests) + sync: {:8.0} MB/s",
        FILE as f64 / secs / 1e6
    );

    let source = vec![7u8; FILE];
    let mut dest = vec![0u8; MIB];
    let mut copy_rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        for piece in source.chunks(MIB) {
            dest.copy_from_slice(piece);
            std::hint::black_box(&mut dest);
        }
        copy_rates.push(FILE as f64 / start.elapsed().as_secs_f64() / 1e6);
    }
    copy_rates.sort_by(|a, b| a.total_cmp(b));
    let memcpy = copy_rates[2];
    println!("memcpy 64 MiB (1 MiB pieces):        median {memcpy:8.0} MB/s");

    for request in [MIB, 64 * 1024] {
        let mut buf = vec![0u8; request];
        let mut rates = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let mut off = 0u64;
            loop {
                let n = fs.read(f, off, &mut buf)?;
                if n == 0 {
                    break;
                }
                off += n as u64;
            }
            let secs = start.elapsed().as_secs_f64();
            if off != FILE as u64 || buf[..16] != chunk[(FILE - request) % MIB..][..16] {
                return Err("read back the wrong bytes".into());
            }
            rates.push(FILE as f64 / secs / 1e6);
        }
        rates.sort_by(|a, b| a.total_cmp(b));
        println!(
            "read 64 MiB ({:4} KiB requests): median {:8.0} MB/s (min {:.0}, max {:.0}), {:.2} x memcpy",
            request / 1024,
            rates[2],
            rates[0],
            rates[4],
            rates[2] / memcpy
        );
    }
    Ok(())
}
