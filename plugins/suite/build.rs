//! The release build links with `symbol-order.txt` (see the Makefile);
//! cargo does not know that file is an input of the link, so this says so:
//! a new order relinks the executable.
fn main() {
    println!("cargo:rerun-if-changed=symbol-order.txt");
}
