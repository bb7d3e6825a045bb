//! Writes the CustomResourceDefinitions generated from the Rust types: one file per kind under
//! `crds/yaml/` and the Helm chart's `charts/oem-hosting/crds/` (or only the directory given
//! with `--out DIR`), or all of them to standard output with `--stdout`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut stdout = false;
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut outs = vec![
        crate_dir.join("yaml"),
        crate_dir.join("../charts/oem-hosting/crds"),
    ];
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stdout" => stdout = true,
            "--out" => match args.next() {
                Some(dir) => outs = vec![PathBuf::from(dir)],
                None => return usage("--out needs a directory"),
            },
            "-h" | "--help" => {
                println!("usage: crdgen [--stdout | --out DIR]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }
    match run(stdout, &outs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crdgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(stdout: bool, outs: &[PathBuf]) -> Result<(), Box<dyn std::error::Error>> {
    let crds = oem_crds::all_crds();
    if stdout {
        for crd in &crds {
            print!("---\n{}", oem_crds::to_yaml(crd)?);
        }
        return Ok(());
    }
    for out in outs {
        std::fs::create_dir_all(out)?;
        for crd in &crds {
            let path = out.join(oem_crds::file_name(crd));
            std::fs::write(&path, oem_crds::to_yaml(crd)?)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn usage(message: &str) -> ExitCode {
    eprintln!("crdgen: {message}\nusage: crdgen [--stdout | --out DIR]");
    ExitCode::FAILURE
}
