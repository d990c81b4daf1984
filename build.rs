//! Make PyO3's configuration flags (`Py_GIL_DISABLED`, `PyPy`, ...) available to
//! `#[cfg]` in this crate, and `txdefer_recycle` where `src/recycle.rs` reuses freed
//! Deferreds' memory: CPython 3.10 to 3.12 with the GIL, outside the limited API,
//! without reference debugging.

use pyo3_build_config::{BuildFlag, GilUsed, PythonAbiKind, PythonImplementation};

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
    println!("cargo:rustc-check-cfg=cfg(txdefer_recycle)");
    let config = pyo3_build_config::get();
    // Read as `use_pyo3_cfgs` reads them, so that the flags agree.
    let abi = config.target_abi();
    let flags = &config.build_flags().0;
    #[allow(deprecated)] // `Py_TRACE_REFS` is no longer supported by PyO3; still refused
    let debugs_references = flags.contains(&BuildFlag::Py_REF_DEBUG) || flags.contains(&BuildFlag::Py_TRACE_REFS);
    let version = (abi.version().major, abi.version().minor);
    if abi.implementation() == PythonImplementation::CPython
        && abi.kind() == PythonAbiKind::VersionSpecific(GilUsed::GilEnabled)
        && !debugs_references
        && ((3, 10)..(3, 13)).contains(&version)
    {
        println!("cargo:rustc-cfg=txdefer_recycle");
    }
}
