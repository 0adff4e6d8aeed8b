//! The seed inputs of `fuzz/corpus/`, made by code so that they can be rebuilt
//! (`cargo run -p m3-fuzz-targets --example make_seeds`).
//!
//! Seeds are small: a region file of a small DC, MINIX images of 64 to 128 blocks, a few
//! encoded requests, and pseudo-random bytes (from a fixed seed) for the scripted targets,
//! which `arbitrary` reads as scripts.

use m3ipc::{Dc, DcConfig, Message};
use minixfs::{FileSystem, FormatOptions, MemDevice, ROOT};
use std::path::Path;

/// Seeds of one target: file name and contents.
pub type Seeds = Vec<(String, Vec<u8>)>;

/// Pseudo-random bytes (xorshift64*), the same for the same seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Scripts for the targets driven by `arbitrary`: pseudo-random bytes of a few lengths.
pub fn scripts(tag: u64) -> Seeds {
    [16usize, 64, 256, 1024]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("noise-{len}"), noise(tag * 100 + i as u64, len)))
        .collect()
}

/// The region file of a small DC (two tasks, eight processes, no pool), with two slots bound
/// and a message queued, as it lies in the region directory.
pub fn region_files() -> Seeds {
    crate::shm::private_dir();
    let name = "fz-seed";
    crate::shm::remove_dc(name);
    let config = DcConfig {
        dcid: 9,
        node: 0,
        nr_procs: 8,
        nr_tasks: 2,
        nr_sysprocs: 4,
        mode: 0o600,
        pool_bytes: 0,
    };
    let mut out = Seeds::new();
    if let Ok(dc) = Dc::create(name, &config) {
        if let Ok(bytes) = std::fs::read(dc.path()) {
            out.push(("fresh-region".into(), bytes));
        }
        if let (Ok(a), Ok(b)) = (dc.bind(0), dc.bind(5)) {
            let _ = b.senda(a.endpoint(), &Message::new(3));
            if let Ok(bytes) = std::fs::read(dc.path()) {
                out.push(("busy-region".into(), bytes));
            }
        }
    }
    crate::shm::remove_dc(name);
    // One with a 1 MiB pool (region_open gives such a region a fresh pool file).
    let with_pool = DcConfig {
        pool_bytes: 1 << 20,
        dcid: 10,
        ..config
    };
    if let Ok(dc) = Dc::create(name, &with_pool)
        && let (Ok(a), Ok(b)) = (dc.bind(0), dc.bind(5))
    {
        let _ = b.alloc_buffer(4096);
        let _ = b.notify(a.endpoint());
        if let Ok(bytes) = std::fs::read(dc.path()) {
            out.push(("region-with-pool".into(), bytes));
        }
    }
    crate::shm::remove_dc(name);
    out
}

/// Encoded requests of every protocol, one message each, concatenated.
pub fn messages() -> Seeds {
    use muk::storage::fs::{DataRequest, FS_READ, Grantor};
    use muk::storage::rdisk::{BlockRequest, RD_READ};
    let mut all = Vec::new();
    let data = DataRequest {
        ino: 2,
        offset: 4096,
        len: 1 << 16,
        grant: m3ipc::GrantId(1 << 40 | 3),
        grant_offset: 0,
        grantor: Grantor::Client(42),
        disk_grant: None,
    };
    let block = BlockRequest {
        first: 1,
        count: 4,
        grant: m3ipc::GrantId(7),
        offset: 1024,
        grantor: Grantor::Requester,
    };
    for m in [
        data.encode(FS_READ),
        block.encode(RD_READ),
        Message::new(0x1005),
    ] {
        for w in m.to_words() {
            all.extend_from_slice(&w.to_le_bytes());
        }
    }
    let mut listing = vec![2u8];
    for (ino, name) in [(1u32, "."), (5, "file")] {
        let l = muk::storage::dirent::Listed {
            ino,
            mode: 0o100_644,
            size: 12,
            name: name.into(),
        };
        let _ = l.encode(&mut listing);
    }
    vec![
        ("requests".into(), all),
        ("listing".into(), listing),
        ("noise".into(), noise(3, 200)),
    ]
}

/// MINIX v3 images: empty and populated, from `mkfs.minix -3` (when installed) and from our
/// formatter.
pub fn minixfs_images(tmp: &Path) -> Seeds {
    let mut out = Seeds::new();
    for blocks in [64u64, 128] {
        let path = tmp.join(format!("mkfs-{blocks}.img"));
        let made = std::fs::write(&path, vec![0u8; blocks as usize * minixfs::BLOCK_SIZE]).is_ok()
            && std::process::Command::new("mkfs.minix")
                .arg("-3")
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if let (true, Ok(bytes)) = (made, std::fs::read(&path)) {
            if blocks == 64 {
                out.push((format!("mkfs-minix-{blocks}"), bytes.clone()));
            } else {
                out.push((format!("mkfs-minix-{blocks}-files"), populate(bytes)));
            }
        }
        let _ = std::fs::remove_file(&path);
        if let Ok(fs) = FileSystem::format(MemDevice::new(blocks), &FormatOptions::default())
            && let Ok(dev) = fs.into_device()
        {
            let bytes = dev.into_bytes();
            if blocks == 64 {
                out.push((format!("ours-{blocks}"), bytes));
            } else {
                out.push((format!("ours-{blocks}-files"), populate(bytes)));
            }
        }
    }
    out
}

/// Directories, a small file, one with indirect blocks, and a hole, in an image.
fn populate(image: Vec<u8>) -> Vec<u8> {
    let Ok(mut fs) = FileSystem::mount(MemDevice::from_bytes(image.clone())) else {
        return image;
    };
    let steps = (|| -> Result<(), minixfs::FsError> {
        let a = fs.mkdir(ROOT, "a", 0o755)?;
        let b = fs.mkdir(a, "b", 0o755)?;
        let small = fs.create(ROOT, "hello.txt", 0o644)?;
        fs.write(small, 0, b"hello, minix\n")?;
        let big = fs.create(b, "big", 0o644)?;
        let data: Vec<u8> = (0..20 * 1024).map(|i| (i % 251) as u8).collect();
        fs.write(big, 0, &data)?;
        let holey = fs.create(a, "holey", 0o644)?;
        fs.write(holey, 30 * 1024, b"end")?;
        fs.sync()
    })();
    match (steps, fs.into_device()) {
        (Ok(()), Ok(dev)) => dev.into_bytes(),
        _ => image,
    }
}

/// Requests as browsers and attackers send them.
pub fn http_requests() -> Seeds {
    [
        (
            "get",
            "GET /index.html HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
        ),
        (
            "head-range",
            "HEAD /a.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=10-99\r\n\r\n",
        ),
        (
            "suffix-range",
            "GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=-5\r\n\r\n",
        ),
        (
            "multi-range",
            "GET /a HTTP/1.1\r\nHost: h\r\nRange: bytes=0-1,4-\r\n\r\n",
        ),
        (
            "traversal",
            "GET /d/%2e%2e/..%2f../etc/passwd HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        ("absolute", "GET http://h/../x HTTP/1.1\r\nHost: h\r\n\r\n"),
        ("http10", "GET /a%20b/?q=1 HTTP/1.0\r\n\r\n"),
        (
            "post-body",
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        ),
        ("partial", "GET /partial HTTP/1.1\r\nHo"),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s.as_bytes().to_vec()))
    .collect()
}

/// Every target's seeds.
pub fn all(tmp: &Path) -> Vec<(&'static str, Seeds)> {
    vec![
        ("region_open", region_files()),
        ("region_scribble", scripts(1)),
        ("message_views", messages()),
        ("server_requests", scripts(2)),
        ("minixfs_image", minixfs_images(tmp)),
        ("grants", scripts(3)),
        ("ffi_args", scripts(4)),
        ("wire_decode", wire_streams()),
        ("http_request", http_requests()),
    ]
}

/// Streams a peer daemon may send: a hello (written by the target or in the input), then one
/// frame of every command, with payloads where the command takes one; fed in pieces of 1, 7
/// and 128 bytes.
pub fn wire_streams() -> Seeds {
    use m3cluster::wire::{Command, Frame, PayloadRule};
    let mut frames = Vec::new();
    for (i, cmd) in Command::ALL.into_iter().enumerate() {
        let mut f = Frame::new(cmd, 3, 40 + i as i32, 7, i as u64);
        f.msg.m_type = 100 + i as i32;
        f.rcode = if i % 3 == 0 { -109 } else { 0 };
        f.payload = match cmd.payload_rule() {
            PayloadRule::Empty => Vec::new(),
            PayloadRule::Text(_) => b"echo".to_vec(),
            PayloadRule::Bytes { min, max } => {
                noise(i as u64, min + if max > min { 100 } else { 0 })
            }
        };
        if let Err(e) = f.encode(&mut frames) {
            panic!("seed frame {cmd:?}: {e}");
        }
    }
    let mut hello = Vec::new();
    if let Err(e) = crate::wire_decode::hello().encode(&mut hello) {
        panic!("seed hello: {e}");
    }
    let mut seeds = Vec::new();
    for (name, mode) in [
        ("after-hello-whole", 1u8 | (127 << 1)),
        ("after-hello-by-7", 1 | (6 << 1)),
    ] {
        let mut b = vec![mode];
        b.extend_from_slice(&frames);
        seeds.push((name.to_string(), b));
    }
    let mut b = vec![0u8];
    b.extend_from_slice(&hello);
    b.extend_from_slice(&frames);
    seeds.push(("with-hello-bytewise".to_string(), b));
    seeds
}
