//! Writes the C header `include/sufast.h` from the exports, or with
//! `--check` fails when the committed header differs from what they say.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = crate_dir.join("../include/sufast.h");
    let check = std::env::args().any(|a| a == "--check");
    let config = match cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cannot read cbindgen.toml: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bindings = match cbindgen::generate_with_config(crate_dir, config) {
        Ok(bindings) => bindings,
        Err(e) => {
            eprintln!("cannot generate the header: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    if check {
        let committed = std::fs::read(&target).unwrap_or_default();
        if committed != generated {
            eprintln!(
                "{} is stale: run `make header` and commit it",
                target.display()
            );
            return ExitCode::FAILURE;
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::write(&target, &generated) {
        eprintln!("cannot write {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    println!("wrote {}", target.display());
    ExitCode::SUCCESS
}
