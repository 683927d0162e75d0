//! Generates the `fanout.v1` gRPC code. `protoc` comes from the `protoc-bin-vendored` crate, so a
//! fresh machine needs nothing but the Rust toolchain; set `PROTOC` to use another compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        // SAFETY: build scripts are single-threaded; nothing else reads the environment here.
        unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    }
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure().compile_protos(&["proto/fanout/v1/leaf.proto"], &["proto"])?;
    Ok(())
}
