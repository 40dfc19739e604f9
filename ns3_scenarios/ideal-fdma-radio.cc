#include "cosim-radio.h"
#include <stdexcept>
namespace cosim
{
std::unique_ptr<CosimRadio>
MakeIdealFdmaRadio()
{
    throw std::runtime_error("radio ideal-fdma: not implemented yet");
}
} // namespace cosim
