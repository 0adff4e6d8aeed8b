//! Acceptance 1 (and 2): a randomized workload on an image made by `mkfs.minix -3` (and on
//! one made by our formatter), every result checked against an in-memory model, then
//! `fsck.minix -f` must find nothing wrong. The seed is printed; `MINIXFS_SEED=N` reruns one.
//! The directory indexes must agree with the directories on disk at every check; a proptest
//! drives directories of many entries (several blocks, reused slots, renames over existing
//! names, evictions under a tiny index budget) and checks the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use minixfs::{BlockDevice, FileDevice, FileSystem, FormatOptions, FsError, MemDevice, ROOT};
use proptest::prelude::*;
use support::{Rng, TempImage, assert_fsck_clean, fsck, pattern};

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir,
}

/// The reference: absolute path -> node. "/" is the root.
struct Model {
    nodes: BTreeMap<String, Node>,
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn split(path: &str) -> (String, String) {
    let at = path.rfind('/').unwrap_or(0);
    let dir = if at == 0 {
        "/".to_string()
    } else {
        path[..at].to_string()
    };
    (dir, path[at + 1..].to_string())
}

impl Model {
    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .keys()
            .filter(|k| {
                k.len() > prefix.len() && k.starts_with(&prefix) && !k[prefix.len()..].contains('/')
            })
            .map(|k| k[prefix.len()..].to_string())
            .collect()
    }
    fn dirs(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::Dir))
            .map(|(k, _)| k.clone())
            .collect()
    }
    fn files(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n, Node::File(_)))
            .map(|(k, _)| k.clone())
            .collect()
    }
    fn is_dir(&self, p: &str) -> bool {
        matches!(self.nodes.get(p), Some(Node::Dir))
    }
    fn bytes(&self) -> usize {
        self.nodes
            .values()
            .map(|n| if let Node::File(d) = n { d.len() } else { 0 })
            .sum()
    }
}

/// Expected outcome: Ok, or the errno of the error.
fn same<T: std::fmt::Debug>(what: &str, got: &Result<T, FsError>, want: Result<(), i32>) {
    match (got, want) {
        (Ok(_), Ok(())) => {}
        (Err(e), Err(errno)) if e.errno() == errno => {}
        _ => panic!("{what}: got {got:?}, model expects {want:?}"),
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "d",
    "e",
    "file.txt",
    "with space",
    "exactly-sixty-bytes-long-name-000000000000000000000000000000",
];

/// Offsets near the ends of the direct zones (7 KiB), the single indirect block
/// (263 KiB) and inside the double indirect range.
fn offset(rng: &mut Rng) -> u64 {
    let base = *rng.pick(&[0u64, 7 * 1024, 263 * 1024, 300 * 1024, 0]);
    let jitter = rng.below(6 * 1024);
    (base + jitter).saturating_sub(3 * 1024)
}

fn length(rng: &mut Rng) -> usize {
    if rng.chance(10) {
        rng.below(80 * 1024) as usize + 1
    } else {
        rng.below(9 * 1024) as usize + 1
    }
}

fn verify_all<D: BlockDevice>(fs: &mut FileSystem<D>, m: &Model, seed: u64, step: usize) {
    fs.check_dir_indexes()
        .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
    for (path, node) in &m.nodes {
        let ino = fs
            .lookup(path)
            .unwrap_or_else(|e| panic!("seed {seed} step {step}: lookup {path}: {e}"));
        let st = fs.stat(ino).expect("stat");
        match node {
            Node::File(data) => {
                assert!(
                    st.is_file(),
                    "seed {seed} step {step}: {path} is not a file"
                );
                assert_eq!(
                    st.size,
                    data.len() as u64,
                    "seed {seed} step {step}: size of {path}"
                );
                assert_eq!(st.nlinks, 1);
                let mut buf = vec![0u8; data.len() + 100];
                let n = fs.read(ino, 0, &mut buf).expect("read");
                assert_eq!(n, data.len());
                assert!(
                    buf[..n] == data[..],
                    "seed {seed} step {step}: contents of {path}"
                );
            }
            Node::Dir => {
                assert!(
                    st.is_dir(),
                    "seed {seed} step {step}: {path} is not a directory"
                );
                let children = m.children(path);
                let subdirs = children.iter().filter(|c| m.is_dir(&join(path, c))).count();
                assert_eq!(
                    st.nlinks as usize,
                    2 + subdirs,
                    "seed {seed} step {step}: links of {path}"
                );
                let mut listed: Vec<String> = fs
                    .readdir(ino, 0, usize::MAX)
                    .expect("readdir")
                    .into_iter()
                    .map(|e| e.name)
                    .collect();
                assert_eq!(
                    &listed[..2],
                    &[".", ".."],
                    "seed {seed} step {step}: {path} starts with . and .."
                );
                listed.drain(..2);
                listed.sort();
                let mut want = children;
                want.sort();
                assert_eq!(listed, want, "seed {seed} step {step}: entries of {path}");
            }
        }
    }
}

/// Runs `ops` random operations on the image at `path`, checking each against the model.
fn workload(path: &std::path::Path, seed: u64, ops: usize) -> Model {
    eprintln!("random workload: seed {seed} (rerun with MINIXFS_SEED={seed}), {ops} operations");
    let mut rng = Rng::new(seed);
    let mut m = Model {
        nodes: BTreeMap::from([("/".to_string(), Node::Dir)]),
    };
    let mut fs = FileSystem::mount(FileDevice::open(path).expect("open image"))
        .expect("mount")
        .with_cache_blocks(64 + rng.below(512) as usize);
    let mut tag = 0u64;
    // How many of each kind ran, and the largest file seen: the workload must cover them.
    let mut done: BTreeMap<&str, usize> = BTreeMap::new();
    let mut largest = 0usize;
    for step in 0..ops {
        let what = rng.below(100);
        let dirs = m.dirs();
        let files = m.files();
        let ctx = |op: &str| format!("seed {seed} step {step}: {op}");
        match what {
            // create
            0..=14 => {
                let dir = rng.pick(&dirs).clone();
                let name = *rng.pick(NAMES);
                let p = join(&dir, name);
                let d = fs.lookup(&dir).expect("lookup dir");
                let got = fs.create(d, name, 0o644);
                let want = if m.nodes.contains_key(&p) {
                    Err(17)
                } else {
                    Ok(())
                };
                same(&ctx(&format!("create {p}")), &got, want);
                *done
                    .entry(if got.is_ok() {
                        "create"
                    } else {
                        "create-exists"
                    })
                    .or_default() += 1;
                if got.is_ok() {
                    m.nodes.insert(p, Node::File(Vec::new()));
                }
            }
            // mkdir
            15..=21 => {
                let dir = rng.pick(&dirs).clone();
                let name = *rng.pick(NAMES);
                let p = join(&dir, name);
                if p.matches('/').count() > 4 {
                    continue;
                }
                let d = fs.lookup(&dir).expect("lookup dir");
                let got = fs.mkdir(d, name, 0o755);
                let want = if m.nodes.contains_key(&p) {
                    Err(17)
                } else {
                    Ok(())
                };
                same(&ctx(&format!("mkdir {p}")), &got, want);
                *done.entry("mkdir").or_default() += 1;
                if got.is_ok() {
                    m.nodes.insert(p, Node::Dir);
                }
            }
            // write at a random offset
            22..=46 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let ino = fs.lookup(&p).expect("lookup file");
                if m.bytes() > 12 << 20 {
                    fs.truncate(ino, 0).expect("truncate");
                    m.nodes.insert(p, Node::File(Vec::new()));
                    continue;
                }
                let off = offset(&mut rng);
                let len = length(&mut rng);
                tag += 1;
                let data = pattern(tag, off, len);
                let n = fs
                    .write(ino, off, &data)
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx("write")));
                assert_eq!(n, len, "{}", ctx("short write"));
                if let Some(Node::File(v)) = m.nodes.get_mut(&p) {
                    let end = off as usize + len;
                    if v.len() < end {
                        v.resize(end, 0);
                    }
                    v[off as usize..end].copy_from_slice(&data);
                    largest = largest.max(v.len());
                    assert_eq!(
                        fs.stat(ino).expect("stat").size,
                        v.len() as u64,
                        "{}",
                        ctx("size after write")
                    );
                }
                *done.entry("write").or_default() += 1;
            }
            // read a random range
            47..=61 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let ino = fs.lookup(&p).expect("lookup file");
                let Some(Node::File(v)) = m.nodes.get(&p) else {
                    unreachable!()
                };
                let off = if rng.chance(50) {
                    offset(&mut rng)
                } else {
                    rng.below(v.len() as u64 + 2048)
                };
                let mut buf = vec![0xa5u8; length(&mut rng)];
                let n = fs.read(ino, off, &mut buf).expect("read");
                let want_n = (v.len() as u64).saturating_sub(off).min(buf.len() as u64) as usize;
                assert_eq!(n, want_n, "{}", ctx(&format!("read {p} at {off}")));
                *done.entry("read").or_default() += 1;
                if n > 0 {
                    assert!(
                        buf[..n] == v[off as usize..off as usize + n],
                        "{}",
                        ctx(&format!("read {p} at {off}"))
                    );
                }
            }
            // truncate: shrink, grow, or to zero
            62..=69 if !files.is_empty() => {
                let p = rng.pick(&files).clone();
                let ino = fs.lookup(&p).expect("lookup file");
                let len = match rng.below(3) {
                    0 => 0,
                    1 => offset(&mut rng),
                    _ => rng.below(8 * 1024),
                };
                fs.truncate(ino, len)
                    .unwrap_or_else(|e| panic!("{}: {e}", ctx("truncate")));
                if let Some(Node::File(v)) = m.nodes.get_mut(&p) {
                    v.resize(len as usize, 0);
                }
                assert_eq!(
                    fs.stat(ino).expect("stat").size,
                    len,
                    "{}",
                    ctx("size after truncate")
                );
                *done.entry("truncate").or_default() += 1;
            }
            // unlink (files, and directories, which must fail)
            70..=77 => {
                let all: Vec<String> = m.nodes.keys().filter(|k| *k != "/").cloned().collect();
                if all.is_empty() {
                    continue;
                }
                let p = rng.pick(&all).clone();
                let (dir, name) = split(&p);
                let d = fs.lookup(&dir).expect("lookup dir");
                let got = fs.unlink(d, &name);
                let want = if m.is_dir(&p) { Err(21) } else { Ok(()) };
                same(&ctx(&format!("unlink {p}")), &got, want);
                *done
                    .entry(if got.is_ok() { "unlink" } else { "unlink-dir" })
                    .or_default() += 1;
                if got.is_ok() {
                    m.nodes.remove(&p);
                }
            }
            // rmdir
            78..=84 => {
                // Mostly empty directories (so that some succeed), sometimes anything.
                let empty: Vec<String> = dirs
                    .iter()
                    .filter(|d| *d != "/" && m.children(d).is_empty())
                    .cloned()
                    .collect();
                let all: Vec<String> = m.nodes.keys().filter(|k| *k != "/").cloned().collect();
                let pool = if !empty.is_empty() && rng.chance(60) {
                    empty
                } else {
                    all
                };
                if pool.is_empty() {
                    continue;
                }
                let p = rng.pick(&pool).clone();
                let (dir, name) = split(&p);
                let d = fs.lookup(&dir).expect("lookup dir");
                let got = fs.rmdir(d, &name);
                let want = if !m.is_dir(&p) {
                    Err(20)
                } else if !m.children(&p).is_empty() {
                    Err(39)
                } else {
                    Ok(())
                };
                same(&ctx(&format!("rmdir {p}")), &got, want);
                *done
                    .entry(if got.is_ok() {
                        "rmdir"
                    } else {
                        "rmdir-refused"
                    })
                    .or_default() += 1;
                if got.is_ok() {
                    m.nodes.remove(&p);
                }
            }
            // rename anything anywhere
            85..=94 => {
                let all: Vec<String> = m.nodes.keys().filter(|k| *k != "/").cloned().collect();
                if all.is_empty() {
                    continue;
                }
                let src = rng.pick(&all).clone();
                let to_dir = rng.pick(&dirs).clone();
                let to_name = *rng.pick(NAMES);
                let dst = join(&to_dir, to_name);
                let (from_dir, from_name) = split(&src);
                let src_is_dir = m.is_dir(&src);
                let want =
                    if src_is_dir && (to_dir == src || to_dir.starts_with(&format!("{src}/"))) {
                        Err(16)
                    } else if src == dst {
                        Ok(())
                    } else {
                        match m.nodes.get(&dst) {
                            None => Ok(()),
                            Some(Node::Dir) if !src_is_dir => Err(21),
                            Some(Node::File(_)) if src_is_dir => Err(20),
                            Some(Node::Dir) if !m.children(&dst).is_empty() => Err(39),
                            Some(_) => Ok(()),
                        }
                    };
                let fd = fs.lookup(&from_dir).expect("lookup dir");
                let td = fs.lookup(&to_dir).expect("lookup dir");
                let got = fs.rename(fd, &from_name, td, to_name);
                same(&ctx(&format!("rename {src} -> {dst}")), &got, want);
                *done
                    .entry(if got.is_ok() {
                        "rename"
                    } else {
                        "rename-refused"
                    })
                    .or_default() += 1;
                if got.is_ok() && src != dst {
                    m.nodes.remove(&dst);
                    let moved: Vec<(String, Node)> = m
                        .nodes
                        .iter()
                        .filter(|(k, _)| **k == src || k.starts_with(&format!("{src}/")))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (k, v) in moved {
                        m.nodes.remove(&k);
                        m.nodes.insert(format!("{dst}{}", &k[src.len()..]), v);
                    }
                }
            }
            // bad names and missing entries
            95..=96 => {
                let long = "n".repeat(61);
                same(&ctx("create long"), &fs.create(ROOT, &long, 0o644), Err(36));
                same(&ctx("create a/b"), &fs.create(ROOT, "a/b", 0o644), Err(22));
                same(&ctx("lookup missing"), &fs.lookup("/no-such-name"), Err(2));
            }
            // sync, sometimes remount
            97..=99 => {
                if rng.chance(50) {
                    let dev = fs.into_device().expect("sync");
                    fs = FileSystem::mount(dev)
                        .expect("remount")
                        .with_cache_blocks(64 + rng.below(512) as usize);
                } else {
                    fs.sync().expect("sync");
                }
            }
            _ => {}
        }
        if step % 250 == 249 {
            verify_all(&mut fs, &m, seed, step);
        }
    }
    verify_all(&mut fs, &m, seed, ops);
    fs.into_device().expect("final sync");
    eprintln!("operations: {done:?}; largest file {largest} bytes");
    for kind in [
        "create",
        "mkdir",
        "write",
        "read",
        "truncate",
        "unlink",
        "rmdir",
        "rename",
        "rename-refused",
    ] {
        assert!(
            done.get(kind).copied().unwrap_or(0) >= 10,
            "seed {seed}: too few {kind}: {done:?}"
        );
    }
    assert!(
        largest > 263 * 1024,
        "seed {seed}: no file reached the double indirect zones"
    );
    m
}

fn seed(default: u64) -> u64 {
    std::env::var("MINIXFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// After the workload, fsck is clean and `fsck.minix -l` lists exactly the model's paths.
fn check_image(path: &std::path::Path, m: &Model) {
    assert_fsck_clean(path);
    let (code, text) = fsck(path, &["-l"]);
    assert_eq!(code, 0, "{text}");
    let listed: BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with('/'))
        .map(|l| l.trim_end_matches(':').to_string())
        .collect();
    // fsck.minix prints at most 59 bytes of each name (its buffer keeps a NUL), so compare
    // with the model's names cut the same way.
    let cut = |p: &String| {
        p.split('/')
            .map(|c| &c[..c.len().min(59)])
            .collect::<Vec<_>>()
            .join("/")
    };
    let want: BTreeSet<String> = m.nodes.keys().filter(|k| *k != "/").map(cut).collect();
    let missing: Vec<_> = want.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "fsck.minix -l: missing {missing:?}, extra {extra:?}"
    );
    assert!(want.len() > 10, "the workload should leave a tree behind");
}

fn run_on_mkfs_image(default_seed: u64) {
    let img = TempImage::mkfs("model", 32 * 1024);
    let m = workload(&img.path, seed(default_seed), 2500);
    check_image(&img.path, &m);
}

#[test]
fn mkfs_image_random_workload_seed_1() {
    run_on_mkfs_image(1);
}

#[test]
fn mkfs_image_random_workload_seed_2() {
    run_on_mkfs_image(0x5eed_0002);
}

#[test]
fn mkfs_image_random_workload_seed_3() {
    run_on_mkfs_image(20_261_128);
}

#[test]
fn own_format_random_workload() {
    let img = TempImage::zeroed("own-model", 32 * 1024);
    let fs = FileSystem::format(
        FileDevice::open(&img.path).unwrap(),
        &FormatOptions::default(),
    )
    .unwrap();
    fs.into_device().unwrap();
    assert_fsck_clean(&img.path);
    let m = workload(&img.path, seed(77), 2000);
    check_image(&img.path, &m);
}

// ---- directory indexes against the disk ------------------------------------------------

/// One operation of the index proptest: names are `n{k}` (files) or `s{k}` (directories) in
/// one of three directories.
#[derive(Debug, Clone)]
enum DirOp {
    Create(usize, u16),
    Mkdir(usize, u16),
    Unlink(usize, u16),
    Rmdir(usize, u16),
    Rename(usize, u16, usize, u16),
    Lookup(usize, u16),
    List(usize, usize),
    Budget(usize),
    Remount,
}

const TOP: [&str; 3] = ["/", "/a", "/b"];

fn dir_op() -> impl Strategy<Value = DirOp> {
    let d = 0usize..3;
    let n = 0u16..120;
    prop_oneof![
        6 => (d.clone(), n.clone()).prop_map(|(d, n)| DirOp::Create(d, n)),
        1 => (d.clone(), 0u16..6).prop_map(|(d, n)| DirOp::Mkdir(d, n)),
        4 => (d.clone(), n.clone()).prop_map(|(d, n)| DirOp::Unlink(d, n)),
        1 => (d.clone(), 0u16..6).prop_map(|(d, n)| DirOp::Rmdir(d, n)),
        3 => (d.clone(), n.clone(), d.clone(), n.clone())
            .prop_map(|(a, x, b, y)| DirOp::Rename(a, x, b, y)),
        2 => (d.clone(), n).prop_map(|(d, n)| DirOp::Lookup(d, n)),
        1 => (d, 1usize..40).prop_map(|(d, p)| DirOp::List(d, p)),
        1 => prop_oneof![Just(0usize), Just(3000), Just(20_000), Just(1 << 20)]
            .prop_map(DirOp::Budget),
        1 => Just(DirOp::Remount),
    ]
}

fn name_of(n: u16) -> String {
    // Some names long, so that index sizes differ.
    if n.is_multiple_of(7) {
        format!("n{n}-{}", "x".repeat(50))
    } else {
        format!("n{n}")
    }
}

/// Runs `ops`, checking every result against a model of the three directories' entries
/// (name -> is a directory) and the indexes against the disk after every change.
fn run_dir_ops(ops: &[DirOp]) -> Result<(), TestCaseError> {
    let mut fs = FileSystem::format(MemDevice::new(4096), &FormatOptions::default()).unwrap();
    fs.mkdir(ROOT, "a", 0o755).unwrap();
    fs.mkdir(ROOT, "b", 0o755).unwrap();
    let mut model: Vec<BTreeMap<String, bool>> = vec![
        BTreeMap::from([("a".to_string(), true), ("b".to_string(), true)]),
        BTreeMap::new(),
        BTreeMap::new(),
    ];
    let mut budget = 1usize << 20;
    for (step, op) in ops.iter().enumerate() {
        let dir = |fs: &mut FileSystem<MemDevice>, d: usize| fs.lookup(TOP[d]).unwrap();
        match op {
            DirOp::Create(d, n) => {
                let name = name_of(*n);
                let di = dir(&mut fs, *d);
                let got = fs.create(di, &name, 0o644);
                let exists = model[*d].contains_key(&name);
                prop_assert_eq!(got.is_ok(), !exists, "step {}: create {:?}", step, got);
                model[*d].insert(name, false);
            }
            DirOp::Mkdir(d, n) => {
                let name = format!("s{n}");
                let di = dir(&mut fs, *d);
                let got = fs.mkdir(di, &name, 0o755);
                let exists = model[*d].contains_key(&name);
                prop_assert_eq!(got.is_ok(), !exists, "step {}: mkdir {:?}", step, got);
                model[*d].entry(name).or_insert(true);
            }
            DirOp::Unlink(d, n) => {
                let name = name_of(*n);
                let di = dir(&mut fs, *d);
                let got = fs.unlink(di, &name);
                let there = model[*d].remove(&name).is_some();
                prop_assert_eq!(got.is_ok(), there, "step {}: unlink {:?}", step, got);
            }
            DirOp::Rmdir(d, n) => {
                let name = format!("s{n}");
                let di = dir(&mut fs, *d);
                let got = fs.rmdir(di, &name);
                let there = model[*d].remove(&name).is_some();
                prop_assert_eq!(got.is_ok(), there, "step {}: rmdir {:?}", step, got);
            }
            DirOp::Rename(a, x, b, y) => {
                // Files only here (a directory moving is the random workload's part); onto an
                // existing file replaces it.
                let (from, to) = (name_of(*x), name_of(*y));
                let fd = dir(&mut fs, *a);
                let td = dir(&mut fs, *b);
                let got = fs.rename(fd, &from, td, &to);
                let ok = model[*a].contains_key(&from);
                prop_assert_eq!(got.is_ok(), ok, "step {}: rename {:?}", step, got);
                if ok && (a, &from) != (b, &to) {
                    model[*a].remove(&from);
                    model[*b].insert(to, false);
                }
            }
            DirOp::Lookup(d, n) => {
                let name = name_of(*n);
                let di = dir(&mut fs, *d);
                let got = fs.lookup_in(di, &name);
                prop_assert_eq!(got.is_ok(), model[*d].contains_key(&name), "step {}", step);
            }
            DirOp::List(d, page) => {
                // Page by page, as FS serves a listing.
                let ino = dir(&mut fs, *d);
                let mut names = Vec::new();
                loop {
                    let batch = fs.readdir(ino, names.len(), *page).unwrap();
                    let last = batch.len() < *page;
                    names.extend(batch.into_iter().map(|e| e.name));
                    if last {
                        break;
                    }
                }
                prop_assert_eq!(&names[..2], &[".", ".."]);
                let mut got: Vec<String> = names[2..].to_vec();
                got.sort();
                let want: Vec<String> = model[*d].keys().cloned().collect();
                prop_assert_eq!(got, want, "step {}: listing of {}", step, TOP[*d]);
            }
            DirOp::Budget(b) => {
                budget = *b;
                fs = fs.with_dir_index_bytes(budget);
            }
            DirOp::Remount => {
                let dev = fs.into_device().unwrap();
                fs = FileSystem::mount(dev).unwrap().with_dir_index_bytes(budget);
            }
        }
        if let Err(e) = fs.check_dir_indexes() {
            return Err(TestCaseError::fail(format!("step {step} ({op:?}): {e}")));
        }
        prop_assert!(fs.dir_index_usage().1 <= budget);
    }
    // Every entry of the model is found, and each directory's entry count is right after a
    // remount (no index: read from disk).
    let mut fs = FileSystem::mount(fs.into_device().unwrap()).unwrap();
    for (d, entries) in model.iter().enumerate() {
        let ino = fs.lookup(TOP[d]).unwrap();
        prop_assert_eq!(
            fs.readdir(ino, 0, usize::MAX).unwrap().len(),
            entries.len() + 2
        );
        for name in entries.keys() {
            prop_assert!(fs.lookup_in(ino, name).is_ok(), "{} in {}", name, TOP[d]);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn dir_indexes_agree_with_the_disk(ops in proptest::collection::vec(dir_op(), 1..400)) {
        run_dir_ops(&ops)?;
    }
}
