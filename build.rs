//! Make PyO3's configuration flags (`Py_GIL_DISABLED`, `PyPy`, ...) available to
//! `#[cfg]` in this crate.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
