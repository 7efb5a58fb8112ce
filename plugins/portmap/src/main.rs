fn main() {
    cni::skel::run(portmap::Portmap)
}
