//! The registry server behind `skiff registry serve` and `skiff registry gc`.
