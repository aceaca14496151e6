"""Options of `kzoo.models.stylegan2.StyleGAN2` (Karras et al., CVPR 2020), without Keras.

Defaults are rosinality/stylegan2-pytorch's (train.py and model.py at commit
bef283a1c24087da704d16c30abc8e36e63efa0e), which follow the paper's config-f, and
NVlabs/stylegan2 (commit bf0fe0baba9fc7039eae0cac575c1778be1ce3e3) where rosinality
has no counterpart: `ema_kimg` is training/training_loop.py `G_smoothing_kimg = 10.0`,
`w_avg_beta` is training/networks_stylegan2.py `dlatent_avg_beta = 0.995`,
`mbstd_*` are `mbstd_group_size=4`, `mbstd_num_features=1`.
"""

from kzoo.options import ModelOption, Options

STYLEGAN2_OPTIONS = Options(
    ModelOption("image_size", int, 256, "Power of two >= 8 (rosinality train.py --size 256)."),
    ModelOption("channels", int, 3, "Image channels (rosinality: 3)."),
    ModelOption("latent_dim", int, 512, "Size of z and of w (rosinality args.latent = 512)."),
    ModelOption("n_mlp", int, 8, "Mapping network layers (args.n_mlp = 8)."),
    ModelOption("lr_mlp", float, 0.01, "Learning-rate multiplier of the mapping network (Generator lr_mlp)."),
    ModelOption("channel_multiplier", int, 2, "Channel multiplier: 2 is config-f, 1 config-e (--channel_multiplier)."),
    ModelOption("channel_base", int, 16384, "Channels at resolution r: min(channel_max, channel_base * "
                "channel_multiplier / r) (16384, 512: rosinality's table)."),
    ModelOption("channel_max", int, 512, "Most channels at any resolution."),
    ModelOption("r1_gamma", float, 10.0, "R1 weight gamma (--r1 10)."),
    ModelOption("r1_interval", int, 16, "Lazy R1: every this many discriminator steps (--d_reg_every 16)."),
    ModelOption("path_weight", float, 2.0, "Path-length regulariser weight (--path_regularize 2); 0 disables it."),
    ModelOption("path_interval", int, 4, "Lazy path-length: every this many generator steps (--g_reg_every 4)."),
    ModelOption("path_batch_shrink", int, 2, "Path-length batch = batch // this (--path_batch_shrink 2)."),
    ModelOption("path_decay", float, 0.01, "Decay of the path-length running mean (g_path_regularize decay)."),
    ModelOption("mixing_prob", float, 0.9, "Style-mixing regularisation probability (--mixing 0.9)."),
    ModelOption("ema_kimg", float, 10.0, "Half-life of the generator EMA in thousands of images "
                "(G_smoothing_kimg); 0: no averaging."),
    ModelOption("w_avg_beta", float, 0.995, "Decay of the tracked mean w for truncation (dlatent_avg_beta)."),
    ModelOption("mbstd_group_size", int, 4, "Minibatch standard deviation group size."),
    ModelOption("mbstd_num_features", int, 1, "Minibatch standard deviation features."),
    ModelOption("adain", bool, False, "StyleGAN 1's AdaIN styled convs instead of (de)modulation (comparison)."),
    ModelOption("seed", int, None, "Seed of the model's noise generator.", optional=True),
)
