#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| m3_fuzz_targets::http_request::run(data));
