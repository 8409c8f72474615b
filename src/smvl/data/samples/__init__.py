"""The sample every source makes and every consumer eats (`sample`), its images and videos, decoded now or later
(`images`, `video`, `lazy`), and the count of samples skipped on the way (`skips`). The bottom floor of `data`."""
