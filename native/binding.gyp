{
  "targets": [
    {
      "target_name": "tsvision",
      "sources": ["src/addon.cc", "src/dispatch.cc", "src/allocator.cc", "src/distributed.cc", "src/profiler.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node find-libtorch.js includes)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "<!@(node find-libtorch.js defines)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O2", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "ldflags": ["<!@(node find-libtorch.js ldflags)"]
    }
  ]
}
