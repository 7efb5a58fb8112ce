fn main() {
    cni::skel::run(bridge::Bridge)
}
