"""Running FFmpeg for users: `sandbox` turns a user's command into a checked argument list,
`run` runs ffmpeg/ffprobe under time, CPU, size and file-count limits in a private directory."""
