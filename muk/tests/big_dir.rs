#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Many files in one directory through m3ftp (the client library over FTP, FS and RDISK under
//! MUK, whose IPC counters are exact): every file is there, a listing read in small pages has
//! every entry once, `fsck.minix -f` is clean, and the RDISK requests per create stay flat as
//! the directory grows (FS indexes the directory instead of scanning it).

mod support;

use m3ipc::Dc;
use muk::Runner;
use muk::ftp_client::{ConnectOptions, FtpClient};
use muk::server::ServerKind;
use muk::server::fs::FormatPolicy;
use muk::server::rdisk::DiskSpec;
use std::collections::HashSet;
use std::time::Duration;
use support::TestDc;
use support::disk::{Scratch, fsck_clean, host_storage};

const STORAGE: [ServerKind; 3] = [ServerKind::Rdisk, ServerKind::Fs, ServerKind::Ftp];
const FILES: usize = 5_000;
const WINDOW: usize = 1_000;

/// Requests RDISK received so far.
fn rdisk_requests(dc: &Dc) -> u64 {
    dc.getprocinfo(ServerKind::Rdisk.default_nr())
        .unwrap()
        .received
}

fn name(k: usize) -> String {
    format!("file-{k:05}")
}

#[test]
fn five_thousand_files_in_one_directory() {
    let s = Scratch::new("muk-bigdir");
    // mkfs.minix gives a 32 MiB image about 10 900 inodes.
    let image = s.mkfs("disk.img", 32);
    let t = TestDc::new('b');
    let h = host_storage(
        &t.dc,
        &STORAGE,
        &DiskSpec::Image(image.clone()),
        FormatPolicy::Never,
        Runner::Threads,
    );
    let mut ftp = FtpClient::connect(&t.name, &ConnectOptions::default()).unwrap();
    support::eventually(Duration::from_secs(10), "FS mounted", || {
        ftp.stat("/").is_ok()
    });
    ftp.mkdir("/many").unwrap();
    let mut per_window = Vec::new();
    let mut at = rdisk_requests(&t.dc);
    for k in 0..FILES {
        let body = name(k).into_bytes();
        let path = format!("/many/{}", name(k));
        ftp.put(
            &mut &body[..],
            body.len() as u64,
            "mem",
            &path,
            &mut |_, _| {},
        )
        .unwrap();
        if (k + 1) % WINDOW == 0 {
            let now = rdisk_requests(&t.dc);
            per_window.push(now - at);
            at = now;
        }
    }
    eprintln!("RDISK requests per {WINDOW} creates: {per_window:?}");
    // Each put costs a few requests (its sync writes the changed blocks, then a flush); the
    // same few at 5 000 entries as at 1 000.
    let (first, last) = (per_window[0], per_window[per_window.len() - 1]);
    assert!(
        last <= first + first / 10,
        "requests per create grew with the directory: {per_window:?}"
    );
    assert!(
        first >= WINDOW as u64,
        "a put reaches RDISK: {per_window:?}"
    );

    // Every file there, with its size; listed once each, in pages of 4 KiB and in one go.
    let paged = ftp.ls_in_pages("/many", 4096).unwrap();
    assert_eq!(paged.len(), FILES + 2);
    let names: HashSet<&str> = paged.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names.len(), FILES + 2, "an entry listed twice");
    for k in 0..FILES {
        assert!(names.contains(name(k).as_str()), "{} missing", name(k));
    }
    assert!(
        paged
            .iter()
            .filter(|e| e.name.starts_with("file-"))
            .all(|e| e.size == 10)
    );
    assert_eq!(ftp.ls("/many").unwrap(), paged);
    let mut back = Vec::new();
    ftp.get("/many/file-04321", &mut back, "mem", &mut |_, _| {})
        .unwrap();
    assert_eq!(back, b"file-04321");
    // A page too small for any entry is an error, not a listing cut short.
    assert!(ftp.ls_in_pages("/many", 8).is_err());
    drop(ftp);
    support::stop(h, 3);
    fsck_clean(&image);
}
