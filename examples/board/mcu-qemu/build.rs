//! Links with this package's `link.x` when building for a bare-metal target.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg=-T{dir}/link.x");
    }
    println!("cargo:rerun-if-changed=link.x");
}
