// Type of files imported `with { type: "file" }`: Bun gives their path (inside the binary, once compiled).
declare module "*.so" {
  const path: string;
  export default path;
}
