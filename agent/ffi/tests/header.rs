//! The committed C header is the one cbindgen makes from the source: a change to the C API
//! that forgot the header fails here. `LEDTRAD_BLESS_HEADER=1` writes the header instead.

use std::path::Path;

#[test]
fn the_committed_header_matches_the_source() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    let bindings =
        cbindgen::Builder::new().with_crate(dir).with_config(config).generate().expect("cbindgen reads the crate");
    let mut made = Vec::new();
    bindings.write(&mut made);
    let made = String::from_utf8(made).expect("the header is UTF-8");
    let path = dir.join("include/ledtrad.h");
    if std::env::var_os("LEDTRAD_BLESS_HEADER").is_some_and(|v| v == "1") {
        std::fs::write(&path, &made).expect("include/ledtrad.h is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != made {
        let line = committed
            .lines()
            .zip(made.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| committed.lines().count().min(made.lines().count()) + 1, |i| i + 1);
        panic!(
            "agent/ffi/include/ledtrad.h differs from what the source makes (first at line {line}): the C API changed; \
             refresh it with `LEDTRAD_BLESS_HEADER=1 cargo test -p ledtrad-ffi --test header`, then review and commit it"
        );
    }
}
