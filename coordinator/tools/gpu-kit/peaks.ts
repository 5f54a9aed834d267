// Peak fp32 throughput (FMA on the CUDA cores, no tensor cores; boost clock) of GPUs that volunteer
// servers are likely to have, by a pattern on the adapter's name: the bench reports % of it.
// Sources: the vendors' data sheets. More specific names first (an H100 PCIe is also an "H100").

export interface Peak {
  name: string;
  tflops: number;
}

const TABLE: [RegExp, Peak][] = [
  [/H100.*PCIe/i, { name: 'NVIDIA H100 PCIe', tflops: 51.2 }],
  [/H100.*NVL/i, { name: 'NVIDIA H100 NVL', tflops: 60 }],
  [/GH200|H200|H100/i, { name: 'NVIDIA H100/H200 SXM', tflops: 66.9 }],
  [/A100/i, { name: 'NVIDIA A100', tflops: 19.5 }],
  [/A10G/i, { name: 'NVIDIA A10G', tflops: 31.2 }],
  [/\bA10\b/i, { name: 'NVIDIA A10', tflops: 31.2 }],
  [/L40S/i, { name: 'NVIDIA L40S', tflops: 91.6 }],
  [/L40\b/i, { name: 'NVIDIA L40', tflops: 90.5 }],
  [/\bL4\b/i, { name: 'NVIDIA L4', tflops: 30.3 }],
  [/RTX 6000 Ada/i, { name: 'NVIDIA RTX 6000 Ada', tflops: 91.1 }],
  [/RTX 4090/i, { name: 'NVIDIA GeForce RTX 4090', tflops: 82.6 }],
  [/RTX 3090/i, { name: 'NVIDIA GeForce RTX 3090', tflops: 35.6 }],
  [/\bT4\b/i, { name: 'NVIDIA T4', tflops: 8.1 }],
  [/V100/i, { name: 'NVIDIA V100', tflops: 15.7 }],
  [/MI300X/i, { name: 'AMD Instinct MI300X', tflops: 163.4 }],
];

/** The adapter's fp32 peak from the table, or null for one it does not know (SwiftShader, say). */
export function peakFor(adapter: string): Peak | null {
  for (const [pattern, peak] of TABLE) if (pattern.test(adapter)) return peak;
  return null;
}
