#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cni_fuzz_targets::prev_result(data));
