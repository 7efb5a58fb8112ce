fn main() {
    cni::skel::run(loopback::Loopback)
}
