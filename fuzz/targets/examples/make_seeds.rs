//! Write the seed corpora to `fuzz/corpus/TARGET/` (files named `seed-*`; other corpus files,
//! added by fuzzing runs, are left alone).
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn main() {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = std::env::temp_dir().join(format!("m3fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (target, seeds) in m3_fuzz_targets::seeds::all(&tmp) {
        let dir = fuzz.join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            let path = dir.join(format!("seed-{name}"));
            std::fs::write(&path, &bytes).unwrap();
            println!("{} ({} bytes)", path.display(), bytes.len());
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
