fn main() {
    std::process::exit(conntrace::app::trace::main());
}
