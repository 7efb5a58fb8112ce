fn main() {
    cni::skel::run(ptp::Ptp)
}
