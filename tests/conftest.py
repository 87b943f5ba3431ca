"""Shared fixtures."""
import pytest


@pytest.fixture(scope="session")
def webshop_dir(tmp_path_factory):
    """A 48-product WebShop catalogue (lumos.envs.webshop.generate, seed 2) in a temporary directory."""
    from lumos.envs.webshop import generate
    return generate.write(tmp_path_factory.mktemp("webshop"), n_products=48, seed=2)


@pytest.fixture(scope="session")
def webshop_shop(webshop_dir):
    from lumos.envs.webshop.shop import Shop
    return Shop.load(webshop_dir)
